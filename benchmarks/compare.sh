#!/usr/bin/env bash
# Side by side: the PyTorch reference (strong configuration, run_pytorch_reference.sh) and GradFlow,
# interleaved per workload (PyTorch, GradFlow, PyTorch, GradFlow, ... for ROUNDS rounds), same
# timing rules, same thread count. Prints the raw JSON lines and then a markdown table with the
# median over rounds of each side, the ratio GradFlow / PyTorch and both peak RSS values.
#   bash benchmarks/compare.sh [--threads T] [--rounds R] [--only w1,w2,...] [extra options for both runners]
# Default workloads: every one GradFlow implements (gemm-N, mlp-wide, mlp-deep-narrow, lstm, gru, cnn-resnet, monitor-overhead).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 rounds=1 only="gemm-128,gemm-512,gemm-1024,gemm-2048,mlp-wide,mlp-deep-narrow,lstm,gru,cnn-resnet,monitor-overhead" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
dotnet build benchmarks/GradFlow.Benchmarks -c Release -v q -nologo >/dev/null
gf=benchmarks/GradFlow.Benchmarks/bin/Release/net10.0/GradFlow.Benchmarks
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for r in $(seq "$rounds"); do
  for w in ${only//,/ }; do
    bash ../shared/bench/run_pytorch_reference.sh --only "$w" --threads "$threads" "${extra[@]}" \
      | grep -v '"meta"' | sed 's/^/pytorch /' | tee -a "$log"
    "$gf" "$w" --threads "$threads" "${extra[@]}" | grep -v '"meta"' | sed 's/^/gradflow /' | tee -a "$log"
  done
done
python3 - "$log" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    side, js = line.split(" ", 1)
    r = json.loads(js)
    rows.setdefault(r["name"], {}).setdefault(side, []).append(r)
def med(rs, key):
    v = [r[key] for r in rs if key in r]
    return statistics.median(v) if v else float("nan")
print("| workload | unit | GradFlow | PyTorch | GradFlow / PyTorch | peak RSS MB GradFlow | peak RSS MB PyTorch | extras GradFlow / PyTorch |")
print("|---|---|---:|---:|---:|---:|---:|---|")
for name, d in rows.items():
    g, p = d.get("gradflow", []), d.get("pytorch", [])
    gv, pv = med(g, "value"), med(p, "value")
    unit = (g or p)[0].get("unit", "?")
    extra = ""
    if name == "monitor-overhead":
        go, po = med(g, "overhead_ratio"), med(p, "overhead_ratio")
        extra = f"overhead_ratio {go:.3f} / {po:.3f} (slowdown {go - 1:+.1%} / {po - 1:+.1%})"
    elif name == "mlp-wide":
        extra = f"effective GFLOP/s {med(g, 'effective_gflops'):.1f} / {med(p, 'effective_gflops'):.1f}"
    if "alloc_bytes_per_step" in (g or [{}])[0]:
        extra += f"{'; ' if extra else ''}GradFlow alloc {med(g, 'alloc_bytes_per_step') / 1024:.1f} KiB/step, gen0 GCs/step {med(g, 'gen0_gcs_per_step'):.3f}"
    print(f"| {name} | {unit} | {gv:.2f} | {pv:.2f} | {gv / pv:.2f} | {med(g, 'peak_rss_mb'):.0f} | {med(p, 'peak_rss_mb'):.0f} | {extra} |")
PY
