"""Keras model → FP32 ONNX with a dynamic batch, the manifest's input name and layout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Tuple

from leukedge.bundle import CLASSES_KEY
from leukedge.errors import BundleError
from leukedge.manifest import Manifest

OPSET = 17  # the floor TensorRT 8.6–10 and ONNX Runtime ≥ 1.15 all read; Q/DQ per-channel needs ≥ 13
BATCH_DIM = "batch"


def input_shape(manifest: Manifest) -> Tuple[int, int, int]:
    p = manifest.preprocessing
    return (p.input_height, p.input_width, 3) if p.layout == "NHWC" else (3, p.input_height, p.input_width)


def check_model_input(model: Any, manifest: Manifest, where: Path) -> None:
    """The Keras model must take exactly the input the manifest describes."""
    shape = tuple(model.inputs[0].shape[1:])
    want = input_shape(manifest)
    if shape != want:
        raise BundleError(
            f"{where}: the model takes inputs of shape {shape}, but its manifest (preprocessing: "
            f"{manifest.preprocessing.input_height}×{manifest.preprocessing.input_width}, "
            f"{manifest.preprocessing.layout}) describes {want}",
            hint="re-train the model with 'leukedge train', which writes a matching manifest",
        )
    outputs = tuple(model.outputs[0].shape[1:])
    if outputs != (len(manifest.classes),):
        raise BundleError(
            f"{where}: the model has output shape {outputs}, expected ({len(manifest.classes)},) "
            f"for the manifest's classes {list(manifest.classes)}"
        )


def export_onnx(model: Any, manifest: Manifest, out: Path, *, opset: int = OPSET) -> Path:
    """Write ``model`` as FP32 ONNX to ``out``: input ``manifest.input_name`` (batch dynamic),
    output ``manifest.output_name``."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *input_shape(manifest)), tf.float32, name=manifest.input_name),)
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    except Exception as exc:  # tf2onnx raises many types for unsupported graphs
        raise BundleError(f"tf2onnx could not convert the model ({type(exc).__name__}: {exc})") from exc
    _name_io(proto, manifest)
    _canonical_names(proto)
    stamp_classes(proto, manifest.classes)
    onnx.checker.check_model(proto)
    tmp = out.with_suffix(".tmp")
    onnx.save_model(proto, str(tmp))
    tmp.replace(out)
    return out


def stamp_classes(proto: Any, classes: Tuple[str, ...]) -> None:
    """Record the output order inside the model: runtimes refuse a manifest whose 'classes' differ."""
    import json

    for entry in list(proto.metadata_props):
        if entry.key == CLASSES_KEY:
            proto.metadata_props.remove(entry)
    entry = proto.metadata_props.add()
    entry.key, entry.value = CLASSES_KEY, json.dumps(list(classes))


def _name_io(proto: Any, manifest: Manifest) -> None:
    """Input/output names as the manifest states them, and a readable batch dimension."""
    graph = proto.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise BundleError(
            f"the converted model has {len(graph.input)} inputs and {len(graph.output)} outputs, expected 1 and 1"
        )
    renames = {graph.input[0].name: manifest.input_name, graph.output[0].name: manifest.output_name}
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    graph.input[0].name = manifest.input_name
    graph.output[0].name = manifest.output_name
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM


_COUNTED = re.compile(r"^(?P<stem>.*?)__\d+(?P<tail>(:\d+)?)$")  # tf2onnx's "Transpose__80:0", "const_starts__67"


def _canonical_names(proto: Any) -> None:
    """Make the export repeatable: the same model gives the same bytes, so its hash names it.

    tf2onnx numbers the names it makes from a global counter and picks among equal folded
    constants in hash-seed order, so two exports of one model differ in names only.  Here every
    counted name (``X__<n>``) and every folded constant (``const_*``) is renamed by order of first
    appearance, unused initializers are dropped and the initializers are sorted.  The Keras layer
    names (``block1_conv1`` …) are kept.
    """
    graph = proto.graph
    keep = {v.name for v in (*graph.input, *graph.output)}
    renames: Dict[str, str] = {}

    def canonical(name: str) -> str:
        if name in keep or name in renames:
            return renames.get(name, name)
        m = _COUNTED.match(name)
        if name.startswith("const_") or m:
            stem = "const" if name.startswith("const_") else m.group("stem")  # type: ignore[union-attr]
            tail = m.group("tail") if m and not name.startswith("const_") else ""
            renames[name] = f"{stem}__c{len(renames)}{tail}"
            return renames[name]
        return name

    for node in graph.node:
        node.input[:] = [canonical(n) if n else n for n in node.input]
        node.output[:] = [canonical(n) for n in node.output]
        node.name = canonical(node.name)
    used = {n for node in graph.node for n in node.input}
    for t in graph.initializer:
        t.name = renames.get(t.name, t.name)
    ordered = sorted((t for t in graph.initializer if t.name in used), key=lambda t: t.name)
    del graph.initializer[:]
    graph.initializer.extend(ordered)
    for v in graph.value_info:
        v.name = renames.get(v.name, v.name)
