"""PyTorch models exported to ONNX for GradFlow's importer (Debian's python3-torch and python3-onnx).

    python3 tests/python/onnx_models.py export DIR
        For each model (mlp, cnn: a small ResNet with an identity and a projection block, lstm: two
        stacked layers read at the last step, deep_sigmoid: ten sigmoid layers, gelu: an MLP with exact and
        tanh GELU, norms: nn.GroupNorm and nn.InstanceNorm2d, tf_pre / tf_post / tf_causal: two-layer transformer encoders (Pre-LN GELU with an
        nn.Embedding and learnt positions; Post-LN ReLU; Post-LN GELU with a causal mask), and two that
        GradFlow refuses: tf_decoder, an nn.TransformerDecoderLayer, tf_mask, an encoder with a constant
        mask that is not causal, and mha_alone, nn.MultiheadAttention outside a transformer layer), writes DIR/NAME.onnx (torch.onnx.export in training mode, no constant folding) and DIR/NAME.safetensors with the reference: the input x, the
        output weights v, the output of the model in training mode and, for the loss sum(v * output),
        the gradient of x (grad.x, not for token inputs) and of every parameter in named_parameters order (grad.0, grad.1, ...;
        the PyTorch names in the metadata), all computed in float64; and DIR/data.npz, 600 examples
        of 6 features in 3 classes for the vector models, and DIR/data_seq.npz, 400 sequences [8, 16] in
        3 classes for tf_cls.
    python3 tests/python/onnx_models.py check FILE.onnx
        Runs onnx.checker.check_model (full) on FILE; prints "ok" or the checker's message, exit 0 / 1.
"""
import json
import struct
import sys

import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: conv-bn-relu-conv-bn, plus x (or its 1x1 conv + bn projection), relu."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class LstmClassifier(nn.Module):
    def __init__(self, features=3, layers=2):
        super().__init__()
        self.rnn = nn.LSTM(features, 8, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


class LstmFlattened(nn.Module):
    """Every step of an LSTM flattened into a linear layer: tied to its T, whatever dynamic_axes say."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(1, 4, batch_first=True)
        self.fc = nn.Linear(5 * 4, 3)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out.flatten(1))


class FinalState(nn.Module):
    """An LSTM or GRU read through its final state h_n: h_n[-1] (a stack's last layer) or h_n.squeeze(0) (one layer)."""

    def __init__(self, cell, layers):
        super().__init__()
        self.rnn = getattr(nn, cell)(3, 8, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        _, h = self.rnn(x)
        if isinstance(h, tuple):
            h = h[0]
        return self.fc(h[-1] if self.rnn.num_layers > 1 else h.squeeze(0))


class Positions(nn.Module):
    """A learnt position table added to [N, T, D] (an nn.Parameter; a module of its own so that named_parameters lists it after the embedding, as GradFlow does)."""

    def __init__(self, t, d):
        super().__init__()
        self.weight = nn.Parameter(0.5 * torch.randn(1, t, d))

    def forward(self, x):
        return x + self.weight


class Encoder(nn.Module):
    """Optional nn.Embedding and learnt positions, a two-layer nn.TransformerEncoder (batch first, no dropout), a Linear head."""

    def __init__(self, norm_first, activation, vocab=None, causal=False, mask=None, classes=None):
        super().__init__()
        self.emb = nn.Embedding(vocab, 16) if vocab else None
        self.pos = Positions(8, 16) if vocab else None
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(8) if causal else mask)
        # a class per position, or (classes) one for the whole sequence through its flattened positions
        self.head = nn.Linear(16, 5) if classes is None else nn.Sequential(nn.Flatten(), nn.Linear(8 * 16, classes))

    def forward(self, x):
        if self.emb is not None:
            x = self.pos(self.emb(x))
        return self.head(self.enc(x, mask=self.mask))


class Decoder(nn.Module):
    """nn.TransformerDecoderLayer: its cross-attention has no GradFlow block."""

    def __init__(self):
        super().__init__()
        self.memory = nn.Linear(16, 16)
        self.dec = nn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, batch_first=True)

    def forward(self, x):
        return self.dec(x, self.memory(x))


class AttentionAlone(nn.Module):
    """nn.MultiheadAttention outside a transformer layer: refused."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        return self.head(self.attn(x, x, x, need_weights=False)[0])


def models():
    torch.manual_seed(7)
    return {
        "mlp": (nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Sigmoid(), nn.Linear(16, 3)), torch.randn(5, 6)),
        "cnn": (nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                              BasicBlock(4, 4, 1), BasicBlock(4, 8, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)),
                torch.randn(4, 1, 8, 8)),
        "lstm": (LstmClassifier(), torch.randn(3, 5, 3)),
        # one input feature, exported with a symbolic time axis (DYNAMIC_T): GradFlow's own export of a recurrent model writes one too
        "lstm_any": (LstmClassifier(features=1, layers=1), torch.randn(3, 5, 1)),
        "lstm_flat_any": (LstmFlattened(), torch.randn(3, 5, 1)),
        # the final state h_n instead of the last step of the output: torch writes Squeeze (one layer), Concat and Gather (a stack)
        "lstm_hn": (FinalState("LSTM", 2), torch.randn(3, 5, 3)),
        "gru_hn": (FinalState("GRU", 1), torch.randn(3, 5, 3)),
        # nn.AvgPool2d: torch writes a Pad before AveragePool (of zeros, or of nothing)
        "avgpool": (nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 4, 3), nn.ReLU(),
                                  nn.AvgPool2d(3, stride=2, padding=1), nn.Flatten(), nn.Linear(4 * 2 * 2, 3)), torch.randn(3, 1, 10, 10)),
        # nn.ZeroPad2d (F.pad): torch computes the Pad's pads from the Shape of a constant and a Slice of step -1; before an
        # AvgPool2d it is nn.AvgPool2d(padding=1) counting the zeros; a reflection pad is refused naming the Pad
        "zeropad": (nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.ZeroPad2d(1), nn.AvgPool2d(3, stride=1), nn.Flatten(),
                                  nn.Linear(4 * 6 * 6, 3)), torch.randn(3, 1, 6, 6)),
        "reflectpad": (nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)), torch.randn(3, 1, 6, 6)),
        # ten sigmoid layers: a vanishing gradient, the same network as "mlp 6-16x10-3 act=sigmoid"
        "deep_sigmoid": (nn.Sequential(*[m for i in range(10) for m in (nn.Linear(6 if i == 0 else 16, 16), nn.Sigmoid())], nn.Linear(16, 3)),
                         torch.randn(5, 6)),
        # nn.GroupNorm (a Reshape, InstanceNormalization, Reshape, Mul, Add) and nn.InstanceNorm2d(affine=True); the conv
        # between them mixes channels (an instance norm right after would make the loss nearly invariant to γ: a gradient of ~0),
        # without a bias (an instance norm cancels it: a true gradient of 0)
        "norms": (nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, bias=False),
                                nn.InstanceNorm2d(4, affine=True), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)),
                  torch.randn(3, 1, 6, 6)),
        "gelu": (nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 16), nn.GELU(approximate="tanh"), nn.Linear(16, 3)), 2 * torch.randn(5, 6)),
        # transformers: d = 16, 2 heads, T = 8, two layers
        "tf_pre": (Encoder(True, "gelu", vocab=11), torch.randint(0, 11, (3, 8))),
        "tf_post": (Encoder(False, "relu"), torch.randn(3, 8, 16)),
        "tf_causal": (Encoder(False, "gelu", causal=True), torch.randn(3, 8, 16)),
        # the same exported with a symbolic batch (DYNAMIC_N): the attention's reshapes then read the shapes of its intermediate values
        "tf_pre_any_n": (Encoder(True, "gelu", vocab=11), torch.randint(0, 11, (3, 8))),
        "tf_causal_any_n": (Encoder(False, "gelu", causal=True), torch.randn(3, 8, 16)),
        "tf_decoder": (Decoder(), torch.randn(3, 8, 16)),
        # a sequence classifier for `diagnose`: the same verdict as the native description
        "tf_cls": (Encoder(False, "relu", classes=3), torch.randn(3, 8, 16)),
        "mha_alone": (AttentionAlone(), torch.randn(3, 8, 16)),
        # a constant mask that is not causal (each position sees itself and later ones): refused
        "tf_mask": (Encoder(False, "relu", mask=nn.Transformer.generate_square_subsequent_mask(8).T.contiguous()), torch.randn(3, 8, 16)),
    }


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    body = b""
    for name, t in tensors.items():
        data = t.detach().contiguous().to(torch.float64).numpy().tobytes()
        header[name] = {"dtype": "F64", "shape": list(t.shape), "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + body)


# models exported with the batch and the time axis symbolic (dynamic_axes), as sequence models of any length are
DYNAMIC_T = {"lstm_any", "lstm_flat_any"}
# and with the batch alone symbolic, as dynamic_axes={"x": {0: "N"}} is usually written
DYNAMIC_N = {"tf_pre_any_n", "tf_causal_any_n"}


def export(out_dir):
    for name, (model, x) in models().items():
        model.train()
        axes = {"x": {0: "N", 1: "T"}} if name in DYNAMIC_T else {"x": {0: "N"}} if name in DYNAMIC_N else None
        torch.onnx.export(model, x, f"{out_dir}/{name}.onnx", training=torch.onnx.TrainingMode.TRAINING,
                          do_constant_folding=False, opset_version=14, input_names=["x"], output_names=["y"], dynamic_axes=axes)
        # the export ran the model once (BatchNorm's running statistics moved): reference from a fresh copy
        fresh = models()[name][0]
        fresh.load_state_dict(model.state_dict())
        fresh = fresh.double().train()
        tokens = not x.is_floating_point()
        xd = x if tokens else x.double().requires_grad_(True)
        out = fresh(xd)
        v = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        (v * out).sum().backward()
        tensors = {"x": x.double(), "v": v, "output": out}
        if not tokens:
            tensors["grad.x"] = xd.grad
        names = []
        for i, (pname, p) in enumerate(fresh.named_parameters()):
            # a position table [1, T, D] is GradFlow's [T, D]: its gradient is written in the shape GradFlow holds
            tensors[f"grad.{i}"] = p.grad.squeeze(0) if pname == "pos.weight" else p.grad
            names.append(pname)
        write_safetensors(f"{out_dir}/{name}.safetensors", tensors, {"parameters": ",".join(names)})
    # a data set for the vector models: 600 examples of 6 features, 3 classes
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)).astype(np.int64)
    np.savez(f"{out_dir}/data.npz", x=x, y=y)
    # and for the sequence classifier: 400 sequences [8, 16], 3 classes
    x = rng.normal(size=(400, 8, 16)).astype(np.float32)
    y = ((x[:, :, 0].mean(axis=1) > 0).astype(np.int64) + (x[:, 0, 1] > 1)).astype(np.int64)
    np.savez(f"{out_dir}/data_seq.npz", x=x, y=y)
    print("ok")


def check(path):
    import onnx
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
    except Exception as e:  # the checker's own exception types differ between versions
        print(f"{type(e).__name__}: {e}")
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(sys.argv[2])
    elif sys.argv[1] == "check":
        check(sys.argv[2])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
