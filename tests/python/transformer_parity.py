#!/usr/bin/python3
"""Checks GradFlow's MultiheadAttention and TransformerEncoderLayer against torch.nn's (Debian's
python3-torch; no pip).

usage: transformer_parity.py CASE.safetensors [CASE.safetensors ...]
Each file, written by tests/GradFlow.Tests/Interop/PyTorchTransformerParityTests.cs, holds the module's
state dict under "model." + its names, the input x [B, T, D], the loss weights v of L = sum(v * y),
optionally "padding" (1 = a padded key, PyTorch's key_padding_mask), and GradFlow's float32 results
"output", "grad.input" and "grad." + every parameter name. The metadata gives "case", "module"
(mha, mha-qk-norm or layer), "heads", "ff", "norm_first" and "activation" (relu or gelu) for a layer, and
"causal". The script builds torch.nn.MultiheadAttention (batch_first, self-attention) or
torch.nn.TransformerEncoderLayer (batch_first, dropout 0) in float64, loads the state dict with
strict=True (so the names and shapes must match exactly), runs forward and backward, and prints one
JSON line per case with the relative error max|a - b| / max|b| of every compared tensor. Exit code 0
when all are below 1e-4.
"""
import math
import sys

import torch

from gradflow_io import check_all, read_safetensors, rel, summary


class QkNormAttention(torch.nn.Module):
    """Self-attention with QK normalisation (torch.nn has none): MultiheadAttention's in_proj_weight,
    in_proj_bias and out_proj, and a LayerNorm over the head dimension on every head's queries (q_norm)
    and keys (k_norm) before the scores, written from the definition (Dehghani et al. 2023)."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = torch.nn.Parameter(torch.empty(3 * d, d))
        self.in_proj_bias = torch.nn.Parameter(torch.empty(3 * d))
        self.out_proj = torch.nn.Linear(d, d)
        self.q_norm = torch.nn.LayerNorm(d // heads)
        self.k_norm = torch.nn.LayerNorm(d // heads)

    def forward(self, x, mask, padding):
        b, t, d = x.shape
        h = self.heads
        q, k, v = torch.nn.functional.linear(x, self.in_proj_weight, self.in_proj_bias).split(d, dim=2)
        heads = lambda z: z.reshape(b, t, h, d // h).transpose(1, 2)
        q, k, v = self.q_norm(heads(q)), self.k_norm(heads(k)), heads(v)
        s = q @ k.transpose(-1, -2) / math.sqrt(d // h)
        if mask is not None:
            s = s.masked_fill(mask, float("-inf"))
        if padding is not None:
            s = s.masked_fill(padding[:, None, None, :], float("-inf"))
        return self.out_proj((torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(b, t, d))


def check(path):
    t, meta = read_safetensors(path)
    t = {k: v.double() for k, v in t.items()}
    x = t["input"].clone().requires_grad_()
    b, s, d = x.shape
    heads = int(meta["heads"])
    causal = meta["causal"] == "true"
    mask = torch.triu(torch.ones(s, s, dtype=torch.bool), diagonal=1) if causal else None  # True: may not attend
    padding = t["padding"].bool() if "padding" in t else None
    if meta["module"] == "mha-qk-norm":
        model = QkNormAttention(d, heads).double()
        run = lambda: model(x, mask, padding)
    elif meta["module"] == "mha":
        model = torch.nn.MultiheadAttention(d, heads, batch_first=True).double()
        run = lambda: model(x, x, x, key_padding_mask=padding, attn_mask=mask, need_weights=False)[0]
    else:
        model = torch.nn.TransformerEncoderLayer(d, heads, int(meta["ff"]), dropout=0.0, activation=meta["activation"],
                                                 batch_first=True, norm_first=meta["norm_first"] == "true").double()
        run = lambda: model(x, src_mask=mask, src_key_padding_mask=padding)
    model.load_state_dict({k[len("model."):]: v for k, v in t.items() if k.startswith("model.")}, strict=True)
    model.train()
    y = run()
    (t["v"] * y).sum().backward()
    errors = {"output": rel(t["output"], y.detach()), "grad.input": rel(t["grad.input"], x.grad)}
    for name, p in model.named_parameters():
        errors["grad." + name] = rel(t["grad." + name], p.grad)
    if meta["module"] == "mha-qk-norm":
        # k_norm's bias adds the same vector to every key: each score row shifts by a constant, which the softmax
        # removes, so its true gradient is 0 (PyTorch's float64 gives ~1e-17) and a relative error is undefined;
        # it is measured against the scale of k_norm.weight's gradient instead
        g = model.k_norm.weight.grad.abs().max()
        errors["grad.k_norm.bias"] = float((t["grad.k_norm.bias"] - model.k_norm.bias.grad).abs().max() / g)
    return summary(errors, case=meta["case"])


check_all(check, sys.argv[1:])
