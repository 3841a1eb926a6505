#!/usr/bin/env bash
# One conv layer of cnn-resnet, GradFlow against PyTorch, interleaved: ROUNDS rounds (default 5) of
# `GradFlow.Benchmarks --profile conv` then benchmarks/conv_layer.py, both on THREADS threads (default 2);
# prints every JSON line and the medians over the rounds. PyTorch runs in the reference's strong
# configuration (OpenMP OpenBLAS, glibc malloc keeping freed memory; its convolutions use oneDNN).
# usage: bash benchmarks/conv_layer.sh [ROUNDS] [THREADS]
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-5}
threads=${2:-2}
dotnet build benchmarks/GradFlow.Benchmarks -c Release >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq "$rounds"); do
  dotnet benchmarks/GradFlow.Benchmarks/bin/Release/net10.0/GradFlow.Benchmarks.dll --profile conv --threads "$threads" | tee -a "$out"
  env -u OPENBLAS_CORETYPE GLIBC_TUNABLES=glibc.malloc.mmap_threshold=134217728:glibc.malloc.trim_threshold=1073741824 \
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 benchmarks/conv_layer.py "$threads" | tee -a "$out"
done
/usr/bin/python3 - "$out" <<'PY'
import json, statistics, sys
rows = [r for r in (json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")) if "engine" in r]
for engine in ("gradflow", "pytorch"):
    rs = [r for r in rows if r["engine"] == engine]
    keys = [k for k in rs[0] if k.endswith("gflops")]
    print(engine, {k: round(statistics.median(r[k] for r in rs), 2) for k in keys}, f"({len(rs)} rounds)")
PY
