"""The side-by-side table of benchmarks/compare.sh, and its regression guard.

    python3 benchmarks/ratio_table.py LOG [--peak GFLOPS] [--check docs/benchmarks.md]

LOG holds the JSON lines of both runners, each prefixed with "pytorch " or "gradflow " (the meta
lines included). Prints the machine (CPU, ISA, threads, measured FMA peak), then one row per
workload: the median over rounds of each side, the ratio GradFlow / PyTorch, GFLOP/s as a share of
the peak for gemm-N, and both peak RSS values.

--check FILE compares each ratio with the reference table of FILE (the rows between the lines
`<!-- ratios:begin -->` and `<!-- ratios:end -->`, first column the workload, a column headed
"ratio ..." the reference ratio) and prints a warning for every workload whose ratio fell by more than
10 % against it. Exit code 0 either way: a shared machine's noise must not fail a build, a human
reads the warning and re-runs (medians of more rounds) before believing it. The ratios depend on the
machine's vector width (PyTorch's oneDNN gains more than GradFlow from a full-width AVX-512 FMA on
some workloads), so the table may hold one ratio column per kind of machine: the column whose header
names "full-width" is used when the measured 512-bit FMA peak is at least 1.5 times the 256-bit one
(--peak and --peak256: Zen 5), the one naming "half-width" on other AVX-512 machines (Zen 4), one
naming "avx2" without AVX-512; otherwise, or when that column is missing, the first "ratio" column.
"""
import argparse
import json
import re
import statistics
import sys

FALL = 0.10


def load(path):
    rows, meta = {}, {}
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.strip()
        if not line:
            continue
        side, _, js = line.partition(" ")
        try:
            r = json.loads(js)
        except json.JSONDecodeError as e:
            sys.exit(f"{path}:{n}: not a JSON line of a runner ({e.msg})")
        if r.get("name") == "meta":
            meta.setdefault(side, r)
            continue
        rows.setdefault(r["name"], {}).setdefault(side, []).append(r)
    return rows, meta


def med(rs, key):
    v = [r[key] for r in rs if isinstance(r.get(key), (int, float))]
    return statistics.median(v) if v else float("nan")


def machine_kind(isa, peak, peak256):
    """'full-width', 'half-width' or 'avx2': the kind of machine whose reference column applies."""
    if isa != "avx512":
        return "avx2"
    return "full-width" if peak == peak and peak256 == peak256 and peak >= 1.5 * peak256 else "half-width"


def reference(path, kind=None):
    """(workload -> reference ratio, column header), from the marked table of the docs page."""
    text = open(path, encoding="utf-8").read()
    m = re.search(r"<!-- ratios:begin -->(.*?)<!-- ratios:end -->", text, re.S)
    if not m:
        sys.exit(f"{path}: no reference table (the lines <!-- ratios:begin --> and <!-- ratios:end -->)")
    lines = [l.strip() for l in m.group(1).splitlines() if l.strip().startswith("|")]
    header = [c.strip().lower() for c in lines[0].strip("|").split("|")]
    cols = [i for i, c in enumerate(header) if c.startswith("ratio")]
    if not cols:
        sys.exit(f"{path}: the reference table has no column headed 'ratio'")
    col = next((i for i in cols if kind and kind in header[i]), cols[0])
    ref = {}
    for l in lines[2:]:
        cells = [c.strip() for c in l.strip("|").split("|")]
        name = re.sub(r"\s*\(.*\)$", "", cells[0])
        value = re.search(r"[-+]?\d+(\.\d+)?", cells[col].replace("*", ""))
        if value:
            ref[name] = float(value.group(0))
    return ref, header[col]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("--peak", type=float, default=float("nan"), help="measured fp32 FMA peak, GFLOP/s, at the runs' thread count")
    ap.add_argument("--peak256", type=float, default=float("nan"), help="the same with 256-bit vectors")
    ap.add_argument("--check", metavar="FILE")
    a = ap.parse_args()
    rows, meta = load(a.log)
    g = meta.get("gradflow", {})
    print(f"Machine: {g.get('cpu', '?')}, {g.get('logical_cpus', '?')} logical CPUs, ISA {g.get('isa', '?')}, "
          f"{g.get('kernel_threads', '?')} threads, .NET {g.get('dotnet', '?')}; "
          f"PyTorch {meta.get('pytorch', {}).get('torch', '?')}; measured fp32 FMA peak {a.peak:.1f} GFLOP/s"
          + (f" (256-bit: {a.peak256:.1f})" if a.peak256 == a.peak256 else ""))
    print()
    print("| workload | unit | GradFlow | PyTorch | ratio GradFlow / PyTorch | GradFlow % of FMA peak | peak RSS MB GradFlow / PyTorch | extras GradFlow / PyTorch |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    ratios = {}
    for name, d in rows.items():
        gs, ps = d.get("gradflow", []), d.get("pytorch", [])
        gv, pv = med(gs, "value"), med(ps, "value")
        unit = (gs or ps)[0].get("unit", "?")
        ratio = gv / pv if pv else float("nan")
        ratios[name] = ratio
        peak = f"{100 * gv / a.peak:.0f} %" if name.startswith("gemm-") and a.peak == a.peak else ""
        extra = ""
        if name == "monitor-overhead":
            go, po = med(gs, "overhead_ratio"), med(ps, "overhead_ratio")
            extra = f"slowdown {go - 1:+.1%} / {po - 1:+.1%}"
        elif name == "mlp-wide":
            extra = f"effective GFLOP/s {med(gs, 'effective_gflops'):.1f} / {med(ps, 'effective_gflops'):.1f}"
        if gs and "alloc_bytes_per_step" in gs[0]:
            extra += f"{'; ' if extra else ''}GradFlow alloc {med(gs, 'alloc_bytes_per_step') / 1024:.1f} KiB/step"
        rounds = f"{len(gs)}/{len(ps)} rounds"
        print(f"| {name} | {unit} | {gv:.2f} | {pv:.2f} | {ratio:.2f} | {peak} | {med(gs, 'peak_rss_mb'):.0f} / {med(ps, 'peak_rss_mb'):.0f} | {extra}{'; ' if extra else ''}{rounds} |")
    if a.check:
        kind = machine_kind(g.get("isa"), a.peak, a.peak256)
        ref, column = reference(a.check, kind)
        print()
        print(f"check: reference column '{column}'"
              + ("" if kind in column else f" (no column for this kind of machine, '{kind}': the ratios of another kind, where a warning may be the machine)"))
        fallen = 0
        for name, r in ratios.items():
            if name not in ref:
                print(f"check: {name}: no reference ratio in {a.check}")
                continue
            if r < ref[name] * (1 - FALL):
                fallen += 1
                print(f"WARNING: {name}: ratio {r:.2f} fell {1 - r / ref[name]:.0%} below the reference {ref[name]:.2f} of {a.check} (more than {FALL:.0%})")
        if not fallen:
            print(f"check: no ratio fell more than {FALL:.0%} below {a.check}")


if __name__ == "__main__":
    main()
