#!/usr/bin/python3
"""Checks `gradflow grads` on a token language model against PyTorch (Debian's python3-torch; no pip).

usage: lm_grads_parity.py BATCH.safetensors GRADS.safetensors HEADS LABEL_SMOOTHING
BATCH holds x [N, T] token ids and y [N, T] the class (next token) of every position; GRADS is what
`gradflow grads --model "transformer vocab=V d=D heads=HEADS layers=L ctx=T"` wrote for it (Pre-LN, GELU,
learned positions, head tied to the token embedding). The script builds that model from torch.nn in float64
(nn.Embedding for tok_emb and pos_emb, causal nn.TransformerEncoderLayer with dropout 0 and norm_first, a
final nn.LayerNorm, logits h @ tok_emb.weight^T), loads GradFlow's parameters with strict=True, runs
cross-entropy over every position (logits [N*T, V] against y [N*T], the mean, with LABEL_SMOOTHING) forward and
backward, and prints one JSON line with the relative error of the loss, the logits and every parameter gradient
against GradFlow's. Exit code 0 when all are below 1e-4.
"""
import json
import sys

import torch

from gradflow_io import exit_by, read_safetensors, rel, summary


class TokenModel(torch.nn.Module):
    """The `transformer vocab=V ...` shorthand's network with PyTorch's modules and its parameter names."""

    def __init__(self, vocab, d, heads, ff, layers, ctx):
        super().__init__()
        self.tok_emb = torch.nn.Embedding(vocab, d)
        self.pos_emb = torch.nn.Embedding(ctx, d)
        self.layers = torch.nn.ModuleList(
            torch.nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
            for _ in range(layers))
        self.norm = torch.nn.LayerNorm(d)

    def forward(self, x):
        t = x.shape[1]
        h = self.tok_emb(x) + self.pos_emb.weight[:t]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)  # True: may not attend
        for layer in self.layers:
            h = layer(h, src_mask=causal)
        return self.norm(h) @ self.tok_emb.weight.T  # the tied head


def main():
    batch, grads = read_safetensors(sys.argv[1])[0], read_safetensors(sys.argv[2])[0]
    heads, smoothing = int(sys.argv[3]), float(sys.argv[4])
    state = {k: v.double() for k, v in grads.items() if not k.endswith(".grad") and k not in ("output", "loss")}
    vocab, d = state["tok_emb.weight"].shape
    ctx = state["pos_emb.weight"].shape[0]
    ff = state["layers.0.linear1.weight"].shape[0]
    layers = len({k.split(".")[1] for k in state if k.startswith("layers.")})
    model = TokenModel(vocab, d, heads, ff, layers, ctx).double()
    model.load_state_dict(state, strict=True)
    model.train()
    x, y = batch["x"].long(), batch["y"].long()
    out = model(x)
    loss = torch.nn.functional.cross_entropy(out.reshape(-1, vocab), y.reshape(-1), label_smoothing=smoothing)
    loss.backward()

    errors = {"loss": rel(grads["loss"].double(), loss.detach()), "output": rel(grads["output"].double(), out.detach())}
    for name, p in model.named_parameters():
        errors[name + ".grad"] = rel(grads[name + ".grad"].double(), p.grad)
    result = summary(errors, positions=int(y.numel()))
    print(json.dumps(result))
    exit_by(result["worst"])


main()
