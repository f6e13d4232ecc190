"""A tiny, real ONNX classifier bundle for device tests: built with onnx.helper in milliseconds.

NHWC float32 input named as the manifest says → strided conv → ReLU → global
average pool → dense → softmax over (hem, all).  The weights are seeded, so
p_all depends on the pixels but means nothing medically; tests check the
plumbing (shapes, order, counts, timing), not accuracy.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from leukedge.bundle import Bundle, write_bundle
from leukedge.manifest import Manifest, Preprocessing


def tiny_onnx(
    path: Path, *, size: int = 128, input_name: str = "input", output_name: str = "predictions", seed: int = 0
) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    conv_w = rng.normal(0, 0.05, (4, 3, 8, 8)).astype(np.float32)
    dense_w = rng.normal(0, 2.0, (4, 2)).astype(np.float32)
    dense_b = np.array([0.0, -0.2], np.float32)
    nodes = [
        helper.make_node("Transpose", [input_name], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "conv_w"], ["conv"], strides=[8, 8]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [output_name], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", size, size, 3])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 2])],
        initializer=[
            numpy_helper.from_array(conv_w, "conv_w"),
            numpy_helper.from_array(dense_w, "dense_w"),
            numpy_helper.from_array(dense_b, "dense_b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="leukedge-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_bundle(root: Path, *, model_size: int = 128, manifest_size: int = 128, **kw: object) -> Bundle:
    """A bundle folder with model.onnx; ``model_size != manifest_size`` makes one that does not match."""
    root.mkdir(parents=True, exist_ok=True)
    tiny_onnx(root / "model.onnx", size=model_size, **kw)  # type: ignore[arg-type]
    pre = Preprocessing(input_height=manifest_size, input_width=manifest_size)
    manifest = replace(Manifest(), name="tiny-test-model", preprocessing=pre, provenance={"made_by": "tests"})
    return write_bundle(root, manifest, {"onnx_fp32": "model.onnx"})
