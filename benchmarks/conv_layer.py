#!/usr/bin/python3
"""PyTorch's side of `GradFlow.Benchmarks --profile conv`: one conv layer of cnn-resnet,
Conv2d(16, 16, 3, padding=1, bias=False) on x = randn(64, 16, 28, 28), float32, CPU, T threads
(torch.set_num_threads; default 2). Forward (no grad) and forward + backward (dx and dW, g = randn of
y's shape) in GFLOP/s counting 2*N*Cout*OH*OW*Cin*9 flop per product (forward 1, backward 2 products),
median of 5 blocks of ~0.5 s after a 1 s warm-up. Prints one JSON line.
usage: conv_layer.py [THREADS]
"""
import json
import sys
import time

import torch


def rate(step):
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 1 or n < 3:
        step()
        n += 1
    iters = max(1, int(n * 0.5 / (time.perf_counter() - t0)))
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(iters):
            step()
        rates.append(iters / (time.perf_counter() - t))
    return sorted(rates)[2]


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)
    x = torch.randn(64, 16, 28, 28)
    g = torch.randn(64, 16, 28, 28)
    product = 2.0 * 64 * 16 * 28 * 28 * 16 * 9 / 1e9
    with torch.no_grad():
        forward = rate(lambda: conv(x)) * product
    xl = x.clone().requires_grad_()

    def step():
        xl.grad = None
        conv.weight.grad = None
        conv(xl).backward(g)

    both = rate(step) * 3 * product
    print(json.dumps({"engine": "pytorch", "threads": threads, "mkldnn": torch.backends.mkldnn.is_available(),
                      "forward_gflops": round(forward, 2), "forward_backward_gflops": round(both, 2)}))


main()
