"""An independent reader of TensorBoard event files, for GradFlow's tests.

Usage: python3 tensorboard_reader.py EVENTFILE
Prints one JSON object per event. The TFRecord framing (uint64 length, masked CRC32C of the length,
data, masked CRC32C of the data) is checked with this file's own table-driven CRC32C; the Event
protobuf is decoded by the google.protobuf package (Debian's python3-protobuf) from message
descriptors declared here with TensorFlow's field numbers (event.proto, summary.proto, tensor.proto),
not from GradFlow's .proto file.
"""
import json
import math
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

POLY = 0x82F63B78
TABLE = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    TABLE.append(c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


F = descriptor_pb2.FieldDescriptorProto


def field(msg, name, number, ftype, label=F.LABEL_OPTIONAL, type_name=None, oneof=None):
    f = msg.field.add(name=name, number=number, type=ftype, label=label)
    if type_name:
        f.type_name = type_name
    if oneof is not None:
        f.oneof_index = oneof


def build():
    fd = descriptor_pb2.FileDescriptorProto(name="tb_reader.proto", package="tbr", syntax="proto3")
    hist = fd.message_type.add(name="HistogramProto")
    for i, n in enumerate(["min", "max", "num", "sum", "sum_squares"], start=1):
        field(hist, n, i, F.TYPE_DOUBLE)
    field(hist, "bucket_limit", 6, F.TYPE_DOUBLE, F.LABEL_REPEATED)
    field(hist, "bucket", 7, F.TYPE_DOUBLE, F.LABEL_REPEATED)
    shape = fd.message_type.add(name="TensorShapeProto")
    dim = shape.nested_type.add(name="Dim")
    field(dim, "size", 1, F.TYPE_INT64)
    field(dim, "name", 2, F.TYPE_STRING)
    field(shape, "dim", 2, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".tbr.TensorShapeProto.Dim")
    tensor = fd.message_type.add(name="TensorProto")
    field(tensor, "dtype", 1, F.TYPE_INT32)
    field(tensor, "tensor_shape", 2, F.TYPE_MESSAGE, type_name=".tbr.TensorShapeProto")
    field(tensor, "string_val", 8, F.TYPE_BYTES, F.LABEL_REPEATED)
    meta = fd.message_type.add(name="SummaryMetadata")
    plugin = meta.nested_type.add(name="PluginData")
    field(plugin, "plugin_name", 1, F.TYPE_STRING)
    field(plugin, "content", 2, F.TYPE_BYTES)
    field(meta, "plugin_data", 1, F.TYPE_MESSAGE, type_name=".tbr.SummaryMetadata.PluginData")
    summary = fd.message_type.add(name="Summary")
    value = summary.nested_type.add(name="Value")
    value.oneof_decl.add(name="value")
    field(value, "tag", 1, F.TYPE_STRING)
    field(value, "metadata", 9, F.TYPE_MESSAGE, type_name=".tbr.SummaryMetadata")
    field(value, "simple_value", 2, F.TYPE_FLOAT, oneof=0)
    field(value, "histo", 5, F.TYPE_MESSAGE, type_name=".tbr.HistogramProto", oneof=0)
    field(value, "tensor", 8, F.TYPE_MESSAGE, type_name=".tbr.TensorProto", oneof=0)
    field(summary, "value", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".tbr.Summary.Value")
    event = fd.message_type.add(name="Event")
    event.oneof_decl.add(name="what")
    field(event, "wall_time", 1, F.TYPE_DOUBLE)
    field(event, "step", 2, F.TYPE_INT64)
    field(event, "file_version", 3, F.TYPE_STRING, oneof=0)
    field(event, "summary", 5, F.TYPE_MESSAGE, type_name=".tbr.Summary", oneof=0)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    desc = pool.FindMessageTypeByName("tbr.Event")
    try:
        return message_factory.GetMessageClass(desc)
    except AttributeError:
        return message_factory.MessageFactory(pool).GetPrototype(desc)


def num(v):
    return v if math.isfinite(v) else str(v)


def main(path):
    Event = build()
    data = open(path, "rb").read()
    at = 0
    while at < len(data):
        if len(data) - at < 12:
            raise SystemExit(f"torn record header at offset {at}")
        length_bytes = data[at:at + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (length_crc,) = struct.unpack("<I", data[at + 8:at + 12])
        if length_crc != masked(length_bytes):
            raise SystemExit(f"length CRC mismatch at offset {at}")
        body = data[at + 12:at + 12 + length]
        (body_crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        if len(body) != length or body_crc != masked(body):
            raise SystemExit(f"data CRC mismatch at offset {at}")
        at += 16 + length
        e = Event()
        e.ParseFromString(body)
        out = {"step": e.step, "wall_time": e.wall_time}
        if e.WhichOneof("what") == "file_version":
            out["file_version"] = e.file_version
        else:
            out["values"] = []
            for v in e.summary.value:
                kind = v.WhichOneof("value")
                item = {"tag": v.tag, "kind": kind}
                if kind == "simple_value":
                    item["value"] = num(v.simple_value)
                elif kind == "histo":
                    h = v.histo
                    item.update(min=h.min, max=h.max, num=h.num, sum=h.sum, limits=list(h.bucket_limit), counts=list(h.bucket))
                elif kind == "tensor":
                    item["plugin"] = v.metadata.plugin_data.plugin_name
                    item["text"] = [s.decode("utf-8") for s in v.tensor.string_val]
                out["values"].append(item)
        print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
