#!/usr/bin/env bash
# The figures of docs/distributed.md, on this machine:
#  1. the all-gather through GradFlow's P/Invoke binding against the same calls from C (2 processes);
#  2. seconds per training step of mlp-wide and cnn-resnet (the workloads of docs/benchmarks.md, trained by
#     `gradflow train` on Fashion-MNIST) for 1 process (whole batch), 1 process with M micro-batches, and
#     mpirun -np N with 1 thread per process, ROUNDS interleaved rounds (default 3), median.
# Usage: bash benchmarks/distributed.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
dotnet build benchmarks/GradFlow.Benchmarks -c Release >/dev/null
dotnet build src/GradFlow.Cli -c Release >/dev/null
mpicc -O2 -o /tmp/mpi_allgather benchmarks/mpi_allgather.c
mpirun --oversubscribe -np 2 /tmp/mpi_allgather
mpirun --oversubscribe -np 2 dotnet benchmarks/GradFlow.Benchmarks/bin/Release/net10.0/GradFlow.Benchmarks.dll --allgather

cli=src/GradFlow.Cli/bin/Release/net10.0/GradFlow.Cli.dll
declare -A model=(
  [mlp-wide]="mlp 784-1024x3-10 act=relu init=default"
  [cnn-resnet]="net 1x28x28 seq[conv(out=16,k=3,p=1,bias=false) batchnorm relu residual(post=relu)[seq[conv(out=16,k=3,p=1,bias=false) batchnorm relu conv(out=16,k=3,p=1,bias=false) batchnorm]] residual(post=relu)[seq[conv(out=16,k=3,p=1,bias=false) batchnorm relu conv(out=16,k=3,p=1,bias=false) batchnorm]] residual(post=relu)[seq[conv(out=16,k=3,p=1,bias=false) batchnorm relu conv(out=16,k=3,p=1,bias=false) batchnorm]] adaptiveavgpool(size=1) flatten linear(out=10)]"
)
declare -A batch=([mlp-wide]=128 [cnn-resnet]=64)
steps=30
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() { # workload processes microbatches
  local w=$1 np=$2 m=$3 args=(train --model "${model[$1]}" --batch-size "${batch[$1]}" --optimizer sgd --lr 0.01 --momentum 0.9
    --max-steps $steps --epochs 1 --train-limit 5000 --test-limit 10 --threads 1 --json)
  [ "$m" -gt 1 ] && args+=(--micro-batches "$m")
  if [ "$np" -eq 1 ]; then dotnet $cli "${args[@]}"; else mpirun --oversubscribe -np "$np" dotnet $cli "${args[@]}"; fi 2>/dev/null |
    python3 -c "import json,sys; r=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(r['seconds']/r['steps'])"
}
for w in mlp-wide cnn-resnet; do
  for r in $(seq "$rounds"); do
    for cfg in "1 1" "1 2" "2 2" "4 4"; do
      set -- $cfg
      echo "$w $1 $2 $(run "$w" "$1" "$2")" | tee -a "$out/times" >&2
    done
  done
done
python3 - "$out/times" <<'PY'
import sys, statistics, collections
t = collections.defaultdict(list)
for line in open(sys.argv[1]):
    w, np_, m, s = line.split()
    t[(w, int(np_), int(m))].append(float(s))
print("| workload | processes × threads | micro-batches | s/step (median) | speed-up over 1 × 1 | efficiency |")
print("|---|---|---:|---:|---:|---:|")
for (w, np_, m), v in t.items():
    base = statistics.median(t[(w, 1, 1)])
    s = statistics.median(v)
    print(f"| {w} | {np_} × 1 | {m} | {s:.4f} | {base / s:.2f} | {base / s / np_:.0%} |")
PY
