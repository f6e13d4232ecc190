"""Which other files an ONNX model reads: the ``location`` of every tensor stored as external data.

An ONNX file may keep its weights in separate files (``data_location`` EXTERNAL,
``external_data`` key ``location``).  ONNX Runtime and TensorRT read them from
the model's folder, so a bundle that hashes only the ``.onnx`` file would serve
changed weights under the same identity.  This walks the protobuf wire format
(no ``onnx`` package needed on the device) through every place a tensor can
sit: graph initializers, sparse initializers, node attributes (``t``,
``tensors``, sparse tensors) and subgraphs, model-local functions (and their
attribute defaults), and training-info graphs.

Field numbers are those of ``onnx.proto``; ``tests/sdk/test_onnx_files.py``
checks them against the ``onnx`` package's own descriptors.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Iterator, List, Set, Tuple

# message -> {field number: message kind it holds}
_MESSAGES = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node", 11: "attribute"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}
_TENSOR_EXTERNAL_DATA = 13  # repeated StringStringEntryProto {key = 1, value = 2}
_MAX_DEPTH = 64  # subgraphs nest (If/Loop bodies); a deeper file is not a model we read


class OnnxParseError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def external_data_files(path: str | os.PathLike[str]) -> List[str]:
    """The external data locations (relative paths, as written) an ONNX file refers to, sorted."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise OnnxParseError(f"{path}: empty file")
        found: Set[str] = set()
        error = ""
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            try:
                _walk(memoryview(mm), "model", found, 0)
            except OnnxParseError as exc:  # kept as text: the traceback would pin views of the map
                error = str(exc)
    if error:
        raise OnnxParseError(f"{path}: not a readable ONNX model ({error})")
    return sorted(found)


def _walk(buf: memoryview, kind: str, found: Set[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise OnnxParseError("messages nested too deep")
    children = _MESSAGES.get(kind, {})
    for number, value in _fields(buf):
        if value is None:
            continue
        if kind == "tensor" and number == _TENSOR_EXTERNAL_DATA:
            entry = dict(_fields(value))
            key, location = entry.get(1), entry.get(2)
            if key is not None and bytes(key) == b"location" and location is not None:
                found.add(bytes(location).decode("utf-8", "surrogateescape"))
        elif number in children:
            _walk(value, children[number], found, depth + 1)


def _fields(buf: memoryview) -> Iterator[Tuple[int, memoryview | None]]:
    """(field number, bytes of a length-delimited field or None for scalars), in order."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
            yield number, None
        elif wire == 1:
            pos += 8
            yield number, None
        elif wire == 5:
            pos += 4
            yield number, None
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise OnnxParseError("a field runs past the end of its message")
            yield number, buf[pos : pos + size]
            pos += size
        else:
            raise OnnxParseError(f"wire type {wire} is not used by ONNX")
        if pos > end:
            raise OnnxParseError("a field runs past the end of its message")


def _varint(buf: memoryview, pos: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise OnnxParseError("a number is cut off")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def is_onnx(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() == ".onnx"
