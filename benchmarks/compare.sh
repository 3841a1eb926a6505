#!/usr/bin/env bash
# Side by side: the PyTorch reference (strong configuration, run_pytorch_reference.sh) and GradFlow,
# interleaved per workload (PyTorch, GradFlow, PyTorch, GradFlow, ... for ROUNDS rounds), same
# timing rules, same thread count. Measures the machine's fp32 FMA peak before each round (the table uses the highest), keeps the raw JSON
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
# The peak is measured before every round and the highest reading is the table's: a VM's clock can change mode during a run
# (a Zen 1 VM read 73.6 GFLOP/s before its first round and 93-94 after its third, which ran 15-20 % faster on both sides), and a
# share of one slow reading overstated the GEMMs' (97 %); against the highest, a share is never flattered by a slow reading.
peaks=""
for r in $(seq "$rounds"); do
  peaks+=$("$gf" --fma-peak --threads "$threads")$'\n'
  for w in ${only//,/ }; do
    bash ../shared/bench/run_pytorch_reference.sh --only "$w" --threads "$threads" --warmup-seconds "$warmup" "${extra[@]}" \
      | sed 's/^/pytorch /' | tee -a "$log"
    "$gf" "$w" --threads "$threads" --warmup-seconds "$warmup" "${extra[@]}" | sed 's/^/gradflow /' | tee -a "$log"
  done
done
peak=$(awk '/512-bit/ && $2 > p {p=$2} END {print p}' <<<"$peaks")
peak256=$(awk '/256-bit/ && $2 > p {p=$2} END {print p}' <<<"$peaks")
[ -n "$peak" ] || peak=$peak256
echo
echo "FMA peak readings, one per round (GFLOP/s): 512-bit $(awk '/512-bit/ {printf "%s ", $2}' <<<"$peaks")256-bit $(awk '/256-bit/ {printf "%s ", $2}' <<<"$peaks")"
python3 benchmarks/ratio_table.py "$log" --peak "${peak:-nan}" --peak256 "${peak256:-nan}" "${check[@]}"
