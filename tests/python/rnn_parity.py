#!/usr/bin/python3
"""Checks GradFlow's recurrent layers against PyTorch number by number (Debian's python3-torch; no pip).

usage: rnn_parity.py CASE.safetensors
The file, written by GradFlow (tests/GradFlow.Tests/Interop/PyTorchRnnParityTests.cs), holds the
layer's parameters under PyTorch's names (weight_ih_l0, ...), the input, the initial state (h0, c0;
absent when the layer ran from zeros), the weights v_output, v_h, v_c of the loss
L = sum(v_output * output) + sum(v_h * h_n) + sum(v_c * c_n), and GradFlow's results: output, h_n,
c_n and grad.NAME for every parameter, the input and the initial state. The metadata gives the
mode (lstm, gru, rnn_tanh, rnn_relu), num_layers and batch_first. This script builds the torch.nn
layer in float64, loads the parameters with strict=True, runs forward and backward, and prints one
JSON line with the relative error max|a - b| / max|b| of every compared tensor. Exit code 0 when all
are below 1e-4.
"""
import json
import sys

import torch

from gradflow_io import exit_by, read_safetensors, rel, summary


def main():
    t, meta = read_safetensors(sys.argv[1])
    t = {k: v.double() for k, v in t.items()}
    mode, layers, batch_first = meta["mode"], int(meta["num_layers"]), meta["batch_first"] == "true"
    w = t["weight_ih_l0"]
    input_size, hidden = w.shape[1], t["weight_hh_l0"].shape[1]
    bias = "bias_ih_l0" in t
    if mode == "lstm":
        model = torch.nn.LSTM(input_size, hidden, num_layers=layers, bias=bias, batch_first=batch_first)
    elif mode == "gru":
        model = torch.nn.GRU(input_size, hidden, num_layers=layers, bias=bias, batch_first=batch_first)
    else:
        model = torch.nn.RNN(input_size, hidden, num_layers=layers, bias=bias, batch_first=batch_first,
                             nonlinearity=mode[len("rnn_"):])
    model = model.double()
    names = [k for k, _ in model.named_parameters()]
    model.load_state_dict({k: t[k] for k in names}, strict=True)

    x = t["input"].clone().requires_grad_()
    state = None
    leaves = {"input": x}
    if "h0" in t:
        h0 = t["h0"].clone().requires_grad_()
        leaves["h0"] = h0
        state = h0
        if mode == "lstm":
            c0 = t["c0"].clone().requires_grad_()
            leaves["c0"] = c0
            state = (h0, c0)
    output, final = model(x, state)
    hn, cn = final if mode == "lstm" else (final, None)
    loss = (t["v_output"] * output).sum() + (t["v_h"] * hn).sum()
    if cn is not None:
        loss = loss + (t["v_c"] * cn).sum()
    loss.backward()

    errors = {"output": rel(t["output"], output.detach()), "h_n": rel(t["h_n"], hn.detach())}
    if cn is not None:
        errors["c_n"] = rel(t["c_n"], cn.detach())
    for name, p in model.named_parameters():
        errors["grad." + name] = rel(t["grad." + name], p.grad)
    for name, leaf in leaves.items():
        errors["grad." + name] = rel(t["grad." + name], leaf.grad)
    result = summary(errors)
    print(json.dumps(result))
    exit_by(result["worst"])


main()
