"""Small model bundles for scoring tests and benchmarks, made by checked-in code.

``build_onnx_bundle`` writes a tiny convolutional classifier as ONNX (FP32,
and INT8 with Q/DQ nodes from ONNX Runtime's static quantization) with a
manifest: no TensorFlow needed, a second or two.  Its weights are fixed so
that p_all grows with how much of the canvas the cell covers (ALL blasts are
larger), which makes its scores non-trivial.  ``build_keras_bundle`` trains
nothing either: it builds a tiny Keras model, saves it as ``model.h5`` with
its manifest and converts it with tf2onnx, for checks that the ``.h5`` and
its ONNX score alike.

Usage (a bundle for ``leukedge score --model DIR``):
    python benchmarks/score_bundle.py DIR [--keras | --vgg13-width 0.25]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterator

import numpy as np

from leukedge.bundle import Bundle, write_bundle
from leukedge.manifest import Manifest

SIZE = 128


def manifest(name: str = "score-test") -> Manifest:
    return Manifest(
        name=name,
        architecture="tiny-cnn",
        provenance={"made_by": "benchmarks/score_bundle.py", "note": "untrained test model, not for diagnosis"},
        parity={"int8": {"passed": True, "note": "test bundle"}},
    )


def _onnx_model(seed: int):  # type: ignore[no-untyped-def]
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    # conv1: filter 0 sums the channels (a cell-coverage detector); the rest are random.
    w1 = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    w1[0] = 1.0 / 27.0
    b1 = np.zeros(8, np.float32)
    w2 = rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32)
    w2[0] = 0.0
    w2[0, 0, 1, 1] = 1.0  # pass coverage through
    b2 = np.zeros(8, np.float32)
    fc = rng.normal(0, 0.2, (8, 2)).astype(np.float32)
    fc[0] = [-6.0, 6.0]  # more coverage → more ALL
    fcb = np.array([0.9, -0.9], np.float32)
    inits = [
        numpy_helper.from_array(a, n)
        for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (fc, "fc"), (fcb, "fcb")]
    ]
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w1", "b1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc", "fcb"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["predictions"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "score_test",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("predictions", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="leukedge-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _calibration_batches(m: Manifest, n: int = 16) -> Iterator[np.ndarray]:
    from leukedge.preprocess import preprocess
    from leukedge.synthetic import make_cell_image

    for i in range(n):
        crop = make_cell_image(i, "all" if i % 2 else "hem", size=SIZE)
        yield preprocess([crop], m.preprocessing)


def quantize_int8(fp32: Path, int8: Path, m: Manifest) -> None:
    """Static Q/DQ INT8 quantization with ONNX Runtime, calibrated on synthetic cells."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):  # subclassed here: the module imports without onnxruntime
        def __init__(self) -> None:
            self.it = iter(_calibration_batches(m))

        def get_next(self):  # type: ignore[no-untyped-def]
            batch = next(self.it, None)
            return None if batch is None else {m.input_name: batch}

    quantize_static(
        str(fp32),
        str(int8),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )


def build_onnx_bundle(root: Path, *, int8: bool = True, seed: int = 0, name: str = "score-test") -> Bundle:
    import onnx

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    m = manifest(name)
    onnx.save(_onnx_model(seed), str(root / "model.onnx"))
    files = {"onnx_fp32": "model.onnx"}
    if int8:
        quantize_int8(root / "model.onnx", root / "model.int8.onnx", m)
        files["onnx_int8"] = "model.int8.onnx"
    return write_bundle(root, m, files)


def _tiny_keras(keras):  # type: ignore[no-untyped-def]
    inp = keras.Input((SIZE, SIZE, 3), name="input")
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="block1_conv1")(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="block2_conv1")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inp, out)


def _vgg13_keras(keras, width: float):  # type: ignore[no-untyped-def]
    """VGG13's convolution stack (2 convs × 5 blocks, 64…512 filters × ``width``), untrained: for timing only."""
    inp = keras.Input((SIZE, SIZE, 3), name="input")
    x = inp
    for block, filters in enumerate((64, 128, 256, 512, 512), start=1):
        for conv in (1, 2):
            f = max(8, int(filters * width))
            x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", name=f"block{block}_conv{conv}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(max(16, int(4096 * width / 4)), activation="relu", name="fc1")(x)
    out = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inp, out)


def build_keras_bundle(root: Path, *, seed: int = 0, vgg13_width: float = 0.0) -> Bundle:
    """A Keras model saved as model.h5 (manifest inside) and its tf2onnx conversion + INT8, in one bundle.

    ``vgg13_width`` > 0 makes an untrained VGG13-shaped model of that width
    (for benchmarks: the inference cost of the product's architecture);
    otherwise a tiny two-layer CNN.
    """
    import keras
    import tf2onnx

    from leukedge.trainer.modelio import save_model

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    m = manifest("score-test-vgg13" if vgg13_width else "score-test-keras")
    keras.utils.set_random_seed(seed)
    model = _vgg13_keras(keras, vgg13_width) if vgg13_width else _tiny_keras(keras)
    save_model(model, root / "model.h5", m)
    import tensorflow as tf

    spec = (tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(root / "model.onnx"))
    quantize_int8(root / "model.onnx", root / "model.int8.onnx", m)
    return write_bundle(root, m, {"onnx_fp32": "model.onnx", "onnx_int8": "model.int8.onnx", "keras": "model.h5"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--keras", action="store_true", help="a Keras model (needs TensorFlow and tf2onnx)")
    ap.add_argument("--vgg13-width", type=float, default=0.0, help="an untrained VGG13 of this width (e.g. 0.25)")
    args = ap.parse_args()
    if args.keras or args.vgg13_width:
        b = build_keras_bundle(args.out, vgg13_width=args.vgg13_width)
    else:
        b = build_onnx_bundle(args.out)
    print(b)


if __name__ == "__main__":
    main()
