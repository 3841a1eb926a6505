#!/usr/bin/python3
"""Checks GradFlow's CIFAR ResNets (built from a network description) against a PyTorch reference
(Debian's python3-torch; no pip).

usage: resnet_parity.py CASE.safetensors [CASE.safetensors ...]
Each file, written by tests/GradFlow.Tests/Network/PyTorchResNetParityTests.cs, holds the network's
state dict under "model." + its names, the input, the loss weights v of L = sum(v * y), and GradFlow's
float32 results: "eval.output" (evaluation mode, running statistics), "output" and "grad.input" and
"grad." + every parameter name (training mode, batch statistics). The metadata gives "case", "depth",
"shortcut" (a or b), "start" (full, zero-gamma or zero), "classes" and "channels". This script defines
the CIFAR ResNet of He et al. 2016 section 4.2 with torchvision's names (conv1, bn1, layer1..3 of
BasicBlocks conv1/bn1/conv2/bn2/shortcut, fc), builds it in float64, loads the state dict with
strict=True (so the names and shapes must match exactly), runs both passes, and prints one JSON line
per case with the parameter count and the relative error max|a - b| / max|b| of every compared tensor.
Exit code 0 when all are below 1e-4.
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from gradflow_io import check_all, read_safetensors, rel, summary


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride, option, start):
        super().__init__()
        if start == "zero":
            self.alpha = nn.Parameter(torch.zeros(1))
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.option = option
        self.pad = (planes - in_planes) // 2
        self.subsample = stride != 1 or in_planes != planes
        if self.subsample and option == "b":
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if hasattr(self, "alpha"):
            out = out * self.alpha
        if not self.subsample:
            s = x
        elif self.option == "b":
            s = self.shortcut(x)
        else:  # option A: x[:, :, ::2, ::2], zero channels on both sides
            s = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + s)


class CifarResNet(nn.Module):
    def __init__(self, depth, option, start, classes, channels):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes = 16
        for i, (width, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(planes, width, stride if j == 0 else 1, option, start))
                planes = width
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(torch.flatten(self.avgpool(out), 1))


def check(path):
    t, meta = read_safetensors(path)
    t = {k: v.double() for k, v in t.items()}
    model = CifarResNet(int(meta["depth"]), meta["shortcut"], meta["start"], int(meta["classes"]), int(meta["channels"])).double()
    model.load_state_dict({k[len("model."):]: v for k, v in t.items() if k.startswith("model.")}, strict=True)
    count = sum(p.numel() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        errors = {"eval.output": rel(t["eval.output"], model(t["input"]))}
    model.train()
    x = t["input"].clone().requires_grad_()
    y = model(x)
    (t["v"] * y).sum().backward()
    errors["output"] = rel(t["output"], y.detach())
    errors["grad.input"] = rel(t["grad.input"], x.grad)
    for name, p in model.named_parameters():
        errors["grad." + name] = rel(t["grad." + name], p.grad)
    return summary(errors, case=meta["case"], parameters=count)


check_all(check, sys.argv[1:])
