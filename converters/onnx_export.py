"""Keras model → FP32 ONNX with a dynamic batch, the manifest's input name and layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Tuple

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
    _canonical_constants(proto)
    onnx.checker.check_model(proto)
    tmp = out.with_suffix(".tmp")
    onnx.save_model(proto, str(tmp))
    tmp.replace(out)
    return out


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


def _canonical_constants(proto: Any) -> None:
    """Name tf2onnx's folded constants by first use, drop unused ones and sort the initializers, so that the same model
    always exports to the same bytes (tf2onnx picks among equal constants in hash-seed order); the
    ONNX hash names the model in results files and TensorRT engine keys."""
    graph = proto.graph
    generated = {t.name for t in graph.initializer if t.name.startswith("const_")}
    renames: dict = {}
    for node in graph.node:
        for name in node.input:
            if name in generated and name not in renames:
                renames[name] = f"const_{len(renames)}"
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
    used = {n for node in graph.node for n in node.input}
    for t in graph.initializer:
        t.name = renames.get(t.name, t.name)
    ordered = sorted((t for t in graph.initializer if t.name in used), key=lambda t: t.name)
    del graph.initializer[:]
    graph.initializer.extend(ordered)
