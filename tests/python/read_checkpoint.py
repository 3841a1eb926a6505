#!/usr/bin/python3
"""Reads a GradFlow checkpoint with PyTorch (Debian's python3-torch; a small safetensors reader,
no pip) and loads the model part into the equivalent torch.nn.Sequential.

usage: read_checkpoint.py CHECKPOINT.safetensors
Prints one JSON object: {"tensors": {name: {"dtype", "shape", "sum", "first"}}, "metadata": {...},
"loaded": [names load_state_dict accepted]}.
"""
import json
import sys

import torch

from gradflow_io import read_safetensors

tensors, metadata = read_safetensors(sys.argv[1])

# Load the model part (names layers.N.*) into a Sequential of Linear layers at the same indices.
model_state = {k[len("layers."):]: v for k, v in tensors.items() if k.startswith("layers.")}
indices = sorted({int(k.split(".")[0]) for k in model_state})
modules = []
for i in range(max(indices) + 1):
    w = model_state.get(f"{i}.weight")
    modules.append(torch.nn.Linear(w.shape[1], w.shape[0]) if w is not None and w.dim() == 2 else torch.nn.Identity())
seq = torch.nn.Sequential(*modules)
seq.load_state_dict(model_state, strict=True)

print(json.dumps({
    "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape), "sum": float(v.double().sum()),
                    "first": [float(x) for x in v.flatten()[:3]]} for k, v in tensors.items()},
    "metadata": metadata,
    "loaded": sorted(seq.state_dict().keys()),
}))
