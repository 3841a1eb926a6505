"""The cost model of docs/distributed.md: data-parallel efficiency of one training step on N nodes.

  T1    = 6 · MACs per example · B / F           (forward 2·MACs FLOPs per example, backward twice that)
  C(N)  = 2(N−1)/N · 4P / BW + 2(N−1)·α          (ring all-reduce of P float32 gradients; GradFlow's ordered
                                                   reduce-scatter + all-gather moves the same volume for M = N)
  T(N)  = T1/N + C(N)                             (no overlap of communication with backward)
  speed-up S = T1 / T(N), efficiency S / N; data parallelism pays while S > 1.

Usage: python3 benchmarks/cost_model.py [GFLOPS_PER_NODE]   (default 240: 16 cores at the 15 GFLOP/s per core measured here)
"""
import sys

F = float(sys.argv[1]) * 1e9 if len(sys.argv) > 1 else 240e9
models = [  # name, parameters P, multiply-adds per example, global batch B
    ("cnn-resnet", 14_362, 10.95e6, 64),
    ("mlp-wide", 2_913_290, 2.91e6, 128),
    ("ResNet-50 (ImageNet)", 25.6e6, 4.1e9, 256),
    ("MLP / transformer block stack, 100 M", 100e6, 100e6, 512),
    ("1 B parameters, dense", 1e9, 1e9, 1024),
]
nets = [("10 GbE", 1.25e9, 20e-6), ("100 Gb/s InfiniBand", 12.5e9, 2e-6)]
ns = [2, 4, 8, 16, 64]
for net, bw, alpha in nets:
    print(f"\n{net} ({bw / 1e9:g} GB/s, α = {alpha * 1e6:g} µs), nodes of {F / 1e9:g} GFLOP/s: speed-up (efficiency)\n")
    print("| model | P | T1 (s/step) | " + " | ".join(f"N = {n}" for n in ns) + " |")
    print("|---|---:|---:|" + "---:|" * len(ns))
    for name, p, macs, b in models:
        t1 = 6 * macs * b / F
        cells = []
        for n in ns:
            c = 2 * (n - 1) / n * 4 * p / bw + 2 * (n - 1) * alpha
            s = t1 / (t1 / n + c)
            cells.append(f"{s:.1f} ({s / n:.0%})" + ("" if s > 1 else " ✗"))
        print(f"| {name} | {p:,.0f} | {t1:.3g} | " + " | ".join(cells) + " |")
