"""Reads float32 bit patterns (hex, one per line) from the file named by the first argument; prints PyTorch's bfloat16 rounding of each,
widened back to float32, as hex bits (NaN as 'nan': PyTorch does not promise which NaN)."""
import struct
import sys

import torch

bits = [int(line, 16) for line in open(sys.argv[1]).read().split()]
x = torch.tensor(struct.unpack(f"<{len(bits)}f", struct.pack(f"<{len(bits)}I", *bits)), dtype=torch.float32)
y = x.bfloat16().float()
for v in y.tolist():
    if v != v:
        print("nan")
    else:
        print(format(struct.unpack("<I", struct.pack("<f", v))[0], "08x"))
