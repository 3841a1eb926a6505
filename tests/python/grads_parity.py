#!/usr/bin/python3
"""Checks `gradflow grads` against PyTorch number by number (Debian's python3-torch; no pip).

usage: grads_parity.py BATCH.safetensors GRADS.safetensors ACTIVATION
Reads GradFlow's parameters from GRADS (names like layers.0.weight), builds the same MLP in
PyTorch (Linear layers with ACTIVATION between them; a PReLU's slopes are loaded like any parameter), loads those parameters, runs cross-entropy
forward and backward on the batch, and prints one JSON line with the largest relative errors of the
loss, the output and every gradient against GradFlow's. Exit code 0 when all are below 1e-4.
"""
import json
import sys

import torch

from gradflow_io import exit_by, read_safetensors, rel, summary


def main():
    batch, grads, activation = read_safetensors(sys.argv[1])[0], read_safetensors(sys.argv[2])[0], sys.argv[3]
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "gelu": torch.nn.GELU,
           "silu": torch.nn.SiLU, "elu": torch.nn.ELU, "selu": torch.nn.SELU, "mish": torch.nn.Mish,
           "prelu": torch.nn.PReLU}[activation]
    # Linear layers have 2-D weights; a PReLU's learnt slopes are a 1-D weight of its own layer index.
    weights = sorted((k for k in grads if k.endswith(".weight") and grads[k].dim() == 2), key=lambda k: int(k.split(".")[1]))
    layers = []
    for i, k in enumerate(weights):
        w = grads[k]
        layers.append(torch.nn.Linear(w.shape[1], w.shape[0]))
        if i + 1 < len(weights):
            layers.append(act())
    model = torch.nn.Sequential(*layers).double()
    # GradFlow's names are layers.N.* with N counting activations too; PyTorch's Sequential the same way.
    state = {k[len("layers."):]: grads[k].double() for k in grads if k.startswith("layers.") and not k.endswith(".grad")}
    model.load_state_dict(state)
    x, y = batch["x"].double(), batch["y"].long()
    out = model(x)
    loss = torch.nn.functional.cross_entropy(out, y)
    loss.backward()

    errors = {"loss": rel(loss.detach(), grads["loss"].double()), "output": rel(out.detach(), grads["output"].double())}
    for name, p in model.named_parameters():
        errors[name + ".grad"] = rel(grads["layers." + name + ".grad"].double(), p.grad)
    result = summary(errors)
    print(json.dumps(result))
    exit_by(result["worst"])


main()
