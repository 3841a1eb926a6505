#!/usr/bin/env bash
# Side by side: the PyTorch reference (strong configuration, run_pytorch_reference.sh) and GradFlow,
# interleaved per workload (PyTorch, GradFlow, PyTorch, GradFlow, ... for ROUNDS rounds), same
# timing rules, same thread count. Measures the machine's fp32 FMA peak first, keeps the raw JSON
# lines in benchmarks/results/compare-DATE.jsonl, and prints the machine and a markdown table: the
# median over rounds of each side, the ratio GradFlow / PyTorch, gemm GFLOP/s as a share of the peak
# and both peak RSS values (benchmarks/ratio_table.py).
#   bash benchmarks/compare.sh [--threads T] [--rounds R] [--only w1,w2,...] [--warmup-seconds W] [--check] [extra options for both runners]
# --check: the regression guard; warns for every workload whose ratio fell more than 10 % below the
# reference table of docs/benchmarks.md (exit code 0 either way; re-run with more rounds before
# believing a warning on a shared machine).
# --warmup-seconds W (default 10) goes to both runners: GradFlow's JIT tiers a method up after 30 calls, so a
# workload whose step takes tens of milliseconds runs partly unoptimised code for seconds (cnn-resnet: 19-22 steps/s
# after the runners' own 1 s warm-up, 37-39 after 6-8 s; GradFlow reports the methods compiled during its timed blocks
# as jit_methods_in_blocks). PyTorch gets the same warm-up (its transformer-small: 2.23 steps/s after 1 s, 2.40 after 10).
# Default: 3 rounds of every workload GradFlow implements.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 rounds=3 warmup=10 check=() extra=()
only="gemm-128,gemm-512,gemm-1024,gemm-2048,mlp-wide,mlp-deep-narrow,lstm,gru,cnn-resnet,transformer-small,monitor-overhead"
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --check) check=(--check docs/benchmarks.md); shift ;;
    --warmup-seconds) warmup=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
dotnet build benchmarks/GradFlow.Benchmarks -c Release -v q -nologo >/dev/null
gf=benchmarks/GradFlow.Benchmarks/bin/Release/net10.0/GradFlow.Benchmarks
mkdir -p benchmarks/results
log=benchmarks/results/compare-$(date -u +%Y%m%dT%H%M%SZ).jsonl
peaks=$("$gf" --fma-peak --threads "$threads")
peak=$(awk '/512-bit/ {p=$2} /256-bit/ && !p {p=$2} END {print p}' <<<"$peaks")
peak256=$(awk '/256-bit/ {print $2}' <<<"$peaks")
for r in $(seq "$rounds"); do
  for w in ${only//,/ }; do
    bash ../shared/bench/run_pytorch_reference.sh --only "$w" --threads "$threads" --warmup-seconds "$warmup" "${extra[@]}" \
      | sed 's/^/pytorch /' | tee -a "$log"
    "$gf" "$w" --threads "$threads" --warmup-seconds "$warmup" "${extra[@]}" | sed 's/^/gradflow /' | tee -a "$log"
  done
done
echo
python3 benchmarks/ratio_table.py "$log" --peak "${peak:-nan}" --peak256 "${peak256:-nan}" "${check[@]}"
