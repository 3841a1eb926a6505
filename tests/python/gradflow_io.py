"""What the scripts of tests/python share (Debian's python3-torch; no pip): a small safetensors reader and
the relative-error comparison of the parity scripts. The scripts run as `python3 tests/python/x.py`, so
this sibling module is on their sys.path.
"""
import json
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32}

# A parity script fails when a compared tensor's relative error reaches this.
TOLERANCE = 1e-4


def read_safetensors(path):
    """({name: tensor in its stored dtype, a copy}, the __metadata__ dict or {})."""
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
        dtype = DTYPES[e["dtype"]]
        # torch.frombuffer refuses an empty buffer, so a tensor with no elements is made directly.
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype).reshape(e["shape"]) if end > begin \
            else torch.empty(e["shape"], dtype=dtype)
        out[name] = t.clone()
    return out, header.get("__metadata__", {})


def rel(a, b):
    """The relative error max|a - b| / max|b| of a against the reference b."""
    return float((a - b).abs().max() / (b.abs().max() + 1e-30))


def summary(errors, **fields):
    """The JSON object a parity script prints: the given fields, the worst error and every error."""
    return {**fields, "worst": max(errors.values()), "errors": errors}


def exit_by(worst):
    """Exits 0 when the worst relative error is below TOLERANCE, else 1."""
    sys.exit(0 if worst < TOLERANCE else 1)


def check_all(check, paths):
    """Runs check on every file, prints each summary as a JSON line, exits by the worst error."""
    worst = 0.0
    for path in paths:
        r = check(path)
        worst = max(worst, r["worst"])
        print(json.dumps(r))
    exit_by(worst)

