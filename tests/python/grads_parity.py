#!/usr/bin/python3
"""Checks `gradflow grads` against PyTorch number by number (Debian's python3-torch; no pip).

usage: grads_parity.py BATCH.safetensors GRADS.safetensors ACTIVATION
Reads GradFlow's parameters from GRADS (names like layers.0.weight), builds the same MLP in
PyTorch (Linear layers with ACTIVATION between them; a PReLU's slopes are loaded like any parameter), loads those parameters, runs cross-entropy
forward and backward on the batch, and prints one JSON line with the largest relative errors of the
loss, the output and every gradient against GradFlow's. Exit code 0 when all are below 1e-4.
"""
import json
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=DTYPES[e["dtype"]]) if end > begin \
            else torch.empty(0, dtype=DTYPES[e["dtype"]])
        out[name] = t.reshape(e["shape"]).clone()
    return out


def main():
    batch, grads, activation = read_safetensors(sys.argv[1]), read_safetensors(sys.argv[2]), sys.argv[3]
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

    def rel(a, b):
        return float((a - b).abs().max() / (b.abs().max() + 1e-30))

    errors = {"loss": rel(loss.detach(), grads["loss"].double()), "output": rel(out.detach(), grads["output"].double())}
    for name, p in model.named_parameters():
        errors[name + ".grad"] = rel(grads["layers." + name + ".grad"].double(), p.grad)
    worst = max(errors.values())
    print(json.dumps({"worst": worst, "errors": errors}))
    sys.exit(0 if worst < 1e-4 else 1)


main()
