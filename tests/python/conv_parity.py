#!/usr/bin/python3
"""Checks GradFlow's convolution, pooling and normalisation layers against PyTorch (Debian's python3-torch; no pip).

usage: conv_parity.py CASE.safetensors [CASE.safetensors ...]
Each file, written by GradFlow (tests/GradFlow.Tests/Interop/PyTorchConvParityTests.cs), holds a
torch.nn.Sequential's state dict before the forward pass under "model." + PyTorch's names, the input,
the loss weights v of L = sum(v * y), and GradFlow's float32 results: "output", "grad.input",
"grad." + every parameter name, and "after." + every buffer name (running statistics after the
training-mode forward). The metadata "layers" is a JSON list of layer descriptions. This script
builds the same Sequential in float64, loads the state dict with strict=True, runs forward and
backward in training mode, and prints one JSON line per case with the relative error
max|a - b| / max|b| of every compared tensor. Exit code 0 when all are below 1e-4.
"""
import json
import sys

import torch

from gradflow_io import check_all, read_safetensors, rel, summary


def layer(d):
    nn = torch.nn
    kind = d["type"]
    if kind == "conv2d":
        return nn.Conv2d(d["in"], d["out"], tuple(d["kernel"]), stride=tuple(d["stride"]), padding=tuple(d["padding"]),
                         dilation=tuple(d["dilation"]), groups=d["groups"], bias=d["bias"])
    if kind == "batchnorm2d":
        return nn.BatchNorm2d(d["channels"])
    if kind == "groupnorm":
        return nn.GroupNorm(d["groups"], d["channels"])
    if kind == "relu":
        return nn.ReLU()
    if kind == "maxpool2d":
        return nn.MaxPool2d(tuple(d["kernel"]), stride=tuple(d["stride"]), padding=tuple(d["padding"]), dilation=tuple(d["dilation"]))
    if kind == "avgpool2d":
        return nn.AvgPool2d(tuple(d["kernel"]), stride=tuple(d["stride"]), padding=tuple(d["padding"]),
                            count_include_pad=d["count_include_pad"])
    if kind == "adaptiveavgpool2d":
        return nn.AdaptiveAvgPool2d(tuple(d["output"]))
    if kind == "flatten":
        return nn.Flatten()
    if kind == "linear":
        return nn.Linear(d["in"], d["out"])
    raise ValueError("unknown layer " + kind)


def check(path):
    t, meta = read_safetensors(path)
    t = {k: v.double() for k, v in t.items()}
    model = torch.nn.Sequential(*[layer(d) for d in json.loads(meta["layers"])]).double()
    model.train()
    model.load_state_dict({k[len("model."):]: v for k, v in t.items() if k.startswith("model.")}, strict=True)
    x = t["input"].clone().requires_grad_()
    y = model(x)
    (t["v"] * y).sum().backward()
    errors = {"output": rel(t["output"], y.detach()), "grad.input": rel(t["grad.input"], x.grad)}
    for name, p in model.named_parameters():
        errors["grad." + name] = rel(t["grad." + name], p.grad)
    for name, b in model.named_buffers():
        errors["after." + name] = rel(t["after." + name], b.double())
    return summary(errors, case=meta["case"])


check_all(check, sys.argv[1:])
