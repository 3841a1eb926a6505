#!/usr/bin/env bash
# Side-by-side gemm-N: PyTorch reference and GradFlow, interleaved per size (PyTorch, GradFlow,
# PyTorch, GradFlow, ... for ROUNDS rounds), same timing rules, same thread count. Prints the raw
# JSON lines and then a markdown table with the median over rounds of each side and the ratio.
#   bash benchmarks/compare.sh [--threads T] [--rounds R] [extra options for both runners]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 rounds=1 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
dotnet build benchmarks/GradFlow.Benchmarks -c Release -v q -nologo >/dev/null
gf=benchmarks/GradFlow.Benchmarks/bin/Release/net10.0/GradFlow.Benchmarks
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for r in $(seq "$rounds"); do
  for n in 128 512 1024 2048; do
    bash ../shared/bench/run_pytorch_reference.sh --only "gemm-$n" --threads "$threads" "${extra[@]}" \
      | grep -v '"meta"' | sed 's/^/pytorch /' | tee -a "$log"
    "$gf" "gemm-$n" --threads "$threads" "${extra[@]}" | grep -v '"meta"' | sed 's/^/gradflow /' | tee -a "$log"
  done
done
python3 - "$log" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    side, js = line.split(" ", 1)
    r = json.loads(js)
    rows.setdefault(r["name"], {}).setdefault(side, []).append(r.get("value", float("nan")))
print("| workload | GradFlow GFLOP/s | PyTorch GFLOP/s | GradFlow / PyTorch |")
print("|---|---:|---:|---:|")
for name, d in rows.items():
    g, p = statistics.median(d["gradflow"]), statistics.median(d["pytorch"])
    print(f"| {name} | {g:.1f} | {p:.1f} | {g / p:.2f} |")
PY
