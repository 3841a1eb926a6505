#!/usr/bin/env bash
# How the data-parallel reduction's buckets should progress (docs/distributed.md, "The overlap of the reduction with
# backward, measured"): mlp-wide (784-1024x3-10, batch 128, 30 SGD steps of Fashion-MNIST, 1 thread) under
# mpirun --oversubscribe -np 2, in interleaved rounds of three modes of a patched copy of this tree (dp-progress.patch,
# selected by DP_MODE):
#   0  the buckets start during the last micro-batch's backward, MPI_Test at each finished parameter (the code as is)
#   2  the buckets start only after backward (no overlap)
#   3  as 0, plus a thread that drives MPI's progress engine (MPI_Iprobe on an idle duplicated communicator between
#      Thread.Yield()s) while buckets are in flight; MPI initialised with MPI_THREAD_MULTIPLE
# Prints per run: mode, seconds per step, and rank 0's median wait after backward for the reduction (ms, steps 6–30).
# Usage: bash scripts/experiments/dp-progress.sh [ROUNDS]   (default 6)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-6}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git archive HEAD | tar -x -C "$tmp"
patch -d "$tmp" -p1 -s < scripts/experiments/dp-progress.patch
dotnet build "$tmp/src/GradFlow.Cli" -c Release >/dev/null
cli=$tmp/src/GradFlow.Cli/bin/Release/net10.0/GradFlow.Cli.dll
for r in $(seq "$rounds"); do
  for mode in 0 2 3; do
    out=$(DP_MODE=$mode mpirun -x DP_MODE --oversubscribe -np 2 dotnet "$cli" train --model "mlp 784-1024x3-10 act=relu init=default" \
      --batch-size 128 --optimizer sgd --lr 0.01 --momentum 0.9 --max-steps 30 --epochs 1 --train-limit 5000 --test-limit 10 \
      --threads 1 --json 2>"$tmp/err")
    sps=$(echo "$out" | tail -1 | python3 -c "import json,sys; r=json.loads(sys.stdin.read().strip()); print(r['seconds']/r['steps'])")
    wait_ms=$(grep -a "^EXPOSED 0" "$tmp/err" | tail -n +6 | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "$mode $sps $wait_ms"
  done
done
