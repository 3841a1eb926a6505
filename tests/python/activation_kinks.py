#!/usr/bin/python3
"""PyTorch's values and subgradients of every GradFlow activation at its kinks (Debian's python3-torch).

usage: activation_kinks.py
Evaluates each activation at the points below (0 and −0, every kink of every activation, PyTorch's
softplus threshold, NaN) in float32 and float64, with upstream gradient 1.5, and prints one line per
(dtype, activation, quantity): `float32 relu y v1 v2 ...` with quantity y (forward), dx (input
gradient) or da (PReLU's slope gradient, one slope per point). Values are Python reprs, NaN as NaN.
"""
import torch

F = torch.nn.functional
POINTS = [0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 6.0, -6.0, 2.5, 20.0, 0.5, float("nan")]
GRAD = 1.5
SLOPE = 0.25

ACTIVATIONS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "elu": lambda x: F.elu(x, 1.0),
    "selu": F.selu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "mish": F.mish,
    "softplus": F.softplus,  # beta 1, threshold 20: the kink of PyTorch's switch is at 20
    "softplus_b2_t5": lambda x: F.softplus(x, beta=2.0, threshold=5.0),  # switch at 2.5
    "hard_sigmoid": F.hardsigmoid,
    "hard_tanh": F.hardtanh,  # kinks at ±1
    "hard_tanh_half": lambda x: F.hardtanh(x, -0.5, 0.5),  # kinks at ±0.5
    "relu6": F.relu6,  # = hardtanh(0, 6)
}


def fmt(values):
    return " ".join("NaN" if v != v else repr(float(v)) for v in values)


def main():
    for dtype, name in ((torch.float32, "float32"), (torch.float64, "float64")):
        for act, f in ACTIVATIONS.items():
            x = torch.tensor(POINTS, dtype=dtype, requires_grad=True)
            y = f(x)
            y.backward(torch.full_like(x, GRAD))
            print(name, act, "y", fmt(y.tolist()))
            print(name, act, "dx", fmt(x.grad.tolist()))
        # PReLU with one slope per point (input [1, N], weight [N]), so each slope gradient is one point's.
        x = torch.tensor([POINTS], dtype=dtype, requires_grad=True)
        a = torch.full((len(POINTS),), SLOPE, dtype=dtype, requires_grad=True)
        y = F.prelu(x, a)
        y.backward(torch.full_like(x, GRAD))
        print(name, "prelu", "y", fmt(y[0].tolist()))
        print(name, "prelu", "dx", fmt(x.grad[0].tolist()))
        print(name, "prelu", "da", fmt(a.grad.tolist()))
    print("points", fmt(POINTS))


main()
