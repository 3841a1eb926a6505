#!/usr/bin/env bash
# The interleaved table of docs/distributed.md ("The overlap of the reduction with backward, measured"): per round and
# workload (mlp-wide, cnn-resnet: the command lines of benchmarks/distributed.sh), one after the other 1 × 1, then
# mpirun -np 2 × 1 thread with the reduction before the buckets (commit 779de68), with the buckets overlapped (HEAD) and with
# the buckets started after backward (HEAD with dp-progress.patch, DP_MODE=2). Prints "workload configuration s/step" lines.
# Usage: bash scripts/experiments/dp-overlap-ab.sh [ROUNDS]   (default 5; WORKLOADS="mlp-wide" to run one)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/base" "$tmp/new"
git archive 779de68 | tar -x -C "$tmp/base"
git archive HEAD | tar -x -C "$tmp/new"
patch -d "$tmp/new" -p1 -s < scripts/experiments/dp-progress.patch
dotnet build "$tmp/base/src/GradFlow.Cli" -c Release >/dev/null
dotnet build "$tmp/new/src/GradFlow.Cli" -c Release >/dev/null
base=$tmp/base/src/GradFlow.Cli/bin/Release/net10.0/GradFlow.Cli.dll
new=$tmp/new/src/GradFlow.Cli/bin/Release/net10.0/GradFlow.Cli.dll
declare -A model=(
  [mlp-wide]="mlp 784-1024x3-10 act=relu init=default"
  [cnn-resnet]="net 1x28x28 seq[conv(out=16,k=3,p=1,bias=false) batchnorm relu residual(post=relu)[seq[conv(out=16,k=3,p=1,bias=false) batchnorm relu conv(out=16,k=3,p=1,bias=false) batchnorm]] residual(post=relu)[seq[conv(out=16,k=3,p=1,bias=false) batchnorm relu conv(out=16,k=3,p=1,bias=false) batchnorm]] residual(post=relu)[seq[conv(out=16,k=3,p=1,bias=false) batchnorm relu conv(out=16,k=3,p=1,bias=false) batchnorm]] adaptiveavgpool(size=1) flatten linear(out=10)]"
)
declare -A batch=([mlp-wide]=128 [cnn-resnet]=64)
run() { # cli processes mode workload
  local args=(train --model "${model[$4]}" --batch-size "${batch[$4]}" --optimizer sgd --lr 0.01 --momentum 0.9 --max-steps 30
    --epochs 1 --train-limit 5000 --test-limit 10 --threads 1 --json)
  if [ "$2" -eq 1 ]; then dotnet "$1" "${args[@]}"; else DP_MODE=$3 mpirun -x DP_MODE --oversubscribe -np 2 dotnet "$1" "${args[@]}"; fi 2>/dev/null |
    tail -1 | python3 -c "import json,sys; r=json.loads(sys.stdin.read().strip()); print(r['seconds']/r['steps'])"
}
for r in $(seq "$rounds"); do
  for w in ${WORKLOADS:-mlp-wide cnn-resnet}; do
    echo "$w 1x1 $(run "$new" 1 0 "$w")"
    echo "$w 2x1-before-buckets $(run "$base" 2 0 "$w")"
    echo "$w 2x1-overlapped $(run "$new" 2 0 "$w")"
    echo "$w 2x1-after-backward $(run "$new" 2 2 "$w")"
  done
done
