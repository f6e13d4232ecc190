"""End to end: a tiny model trained for real → bundle with FP32 ONNX, Q/DQ INT8 and a passing gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from leukedge.bundle import Bundle, sha256_file
from leukedge.cli import main
from leukedge.device.runtimes import choose_precision, open_runtime, resolve_model
from leukedge.preprocess import preprocess
from leukedge.synthetic import make_cell_image
from tests.converters.tinymodels import SIZE, converted_tiny_bundle, synthetic_sets, trained_tiny


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.getbasetemp() / "tiny"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def bundle(tiny_root: Path) -> Bundle:
    return converted_tiny_bundle(tiny_root)


def test_bundle_loads_with_every_file_hashed(bundle: Bundle, tiny_root: Path) -> None:
    loaded = Bundle.load(bundle.root)  # verifies every SHA-256
    assert set(loaded.manifest.files) == {"onnx_fp32", "onnx_int8", "keras", "calibration"}
    prov = loaded.manifest.provenance["conversion"]
    assert prov["source_sha256"] == sha256_file(trained_tiny(tiny_root))
    assert prov["calibration_data"]["per_class"] == {"all": 40, "hem": 40}
    assert prov["validation_data"]["images"] == 200
    assert prov["versions"]["tf2onnx"] and prov["seconds"]["total"] > 0
    assert any("below ~300" in w for w in prov["warnings"])  # 80 calibration cells


def test_fp32_onnx_is_opset_17_dynamic_batch_nhwc(bundle: Bundle) -> None:
    model = onnx.load(str(bundle.path_of("onnx_fp32")))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = model.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == bundle.manifest.input_name == "input"
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [SIZE, SIZE, 3]
    assert [o.name for o in model.graph.output] == ["predictions"]


def test_int8_is_explicit_qdq_symmetric_with_per_channel_weights(bundle: Bundle) -> None:
    model = onnx.load(str(bundle.path_of("onnx_int8")))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    quant = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    dequant = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert quant and len(dequant) > len(quant)  # weights have DequantizeLinear only
    for node in quant + dequant:
        zero_point = init[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), node.name  # symmetric INT8
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    producers = {o: n for n in model.graph.node for o in n.output}
    for conv in convs:
        weight_dq = producers[conv.input[1]]
        assert weight_dq.op_type == "DequantizeLinear"
        scales = init[weight_dq.input[1]]
        assert scales.ndim == 1 and scales.size == init[weight_dq.input[0]].shape[0]  # one scale per output channel
        assert producers[conv.input[0]].op_type == "DequantizeLinear"  # activations enter through Q/DQ
        assert len(conv.input) < 3 or conv.input[2] in init  # bias stays float: TensorRT refuses INT32 DQ


def test_calibration_statistics_and_summary(bundle: Bundle) -> None:
    cal = bundle.manifest.calibration
    assert cal["method"] == "minmax" and cal["images"] == 80 and cal["per_class"] == {"all": 40, "hem": 40}
    assert cal["input_range"][0] >= 0.0 and 0.5 < cal["input_range"][1] <= 1.0  # pixels × 1/255
    table = json.loads(bundle.path_of("calibration").read_text())["data"]
    assert len(table) == cal["tensors"] > 5 and "input" in table


def test_gate_passes_and_auto_picks_int8(bundle: Bundle) -> None:
    parity = bundle.manifest.parity
    assert parity["fp32"]["passed"] and parity["fp32"]["max_abs_delta_p"] <= 1e-4
    int8 = parity["int8"]
    assert int8["passed"] is True and int8["reasons"] == [] and int8["excluded_nodes"] == []
    assert int8["metrics"]["flip_rate"] <= 0.01 and abs(int8["metrics"]["sensitivity_delta"]) <= 1.0
    assert int8["metrics"]["auc_fp32"] > 0.9  # the tiny model learned the synthetic classes
    ref = resolve_model(bundle.root)
    assert choose_precision(ref, "onnxruntime", "auto") == "int8"


def test_every_backend_agrees_and_batch_is_dynamic(bundle: Bundle) -> None:
    crops = [make_cell_image(100 + i, ("hem", "all")[i % 2], size=160) for i in range(7)]
    x = preprocess(crops, bundle.manifest.preprocessing)
    probs = {}
    for backend, precision in (("keras", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")):
        with open_runtime(bundle, backend=backend, precision=precision) as rt:
            one = np.concatenate([rt.p_all(x[i : i + 1]) for i in range(len(x))])
            np.testing.assert_allclose(rt.p_all(x), one, atol=1e-5)
            probs[(backend, precision)] = one
    assert np.abs(probs[("keras", "fp32")] - probs[("onnxruntime", "fp32")]).max() <= 1e-4
    assert np.abs(probs[("onnxruntime", "fp32")] - probs[("onnxruntime", "int8")]).max() < 0.1


def test_cli_prints_the_gate_and_next_commands(tiny_root: Path) -> None:
    train, val = synthetic_sets(tiny_root)
    out = tiny_root / "cli-bundle"
    r = CliRunner().invoke(
        main,
        [
            "convert",
            str(trained_tiny(tiny_root)),
            "--out",
            str(out),
            "--calib-data",
            str(train),
            "--validate",
            str(val),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "FP32 parity (Keras vs ONNX, 200 cells)" in r.output and "verdict: PASS" in r.output
    assert (
        f"leukedge screen --model {out}" in r.output and f"leukedge score CELLS_OR_SMEARS_DIR --model {out}" in r.output
    )
    assert "below ~300 the INT8 activation ranges are noisy" in r.output


def test_without_calibration_data_the_bundle_is_fp32_only(tiny_root: Path) -> None:
    out = tiny_root / "fp32-only"
    r = CliRunner().invoke(main, ["convert", str(trained_tiny(tiny_root)), "--out", str(out)])
    assert r.exit_code == 0, r.output
    b = Bundle.load(out)
    assert set(b.manifest.files) == {"onnx_fp32", "keras"}
    assert b.manifest.parity["fp32"]["passed"] and "synthetic" in b.manifest.parity["fp32"]["source"]
    assert b.manifest.parity["int8"]["passed"] is None
    assert choose_precision(resolve_model(out), "onnxruntime", "auto") == "fp32"


def test_keras_v3_file_converts_too(tiny_root: Path, tmp_path: Path) -> None:
    from leukedge.trainer.modelio import load_model, save_model

    model, manifest = load_model(trained_tiny(tiny_root))
    path = save_model(model, tmp_path / "tiny.keras", manifest)
    r = CliRunner().invoke(main, ["convert", str(path), "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    b = Bundle.load(tmp_path / "b")
    assert b.manifest.files["keras"].path == "model.keras" and b.manifest.parity["fp32"]["passed"]


def test_export_names_folded_constants_by_use_so_bytes_repeat() -> None:
    """tf2onnx picks among equal constants in hash-seed order; the export renames them canonically."""
    from onnx import TensorProto, helper

    from leukedge.converters.onnx_export import _canonical_names

    def graph(first: str, second: str) -> bytes:
        inits = [numpy_helper.from_array(np.array([0], np.int64), n) for n in (second, first)]
        node = helper.make_node("Slice", ["x", first, "ends", first], ["y"], name=second.replace("const", "Slice"))
        ends = numpy_helper.from_array(np.array([2], np.int64), "ends")
        g = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
            [*inits, ends],
        )
        model = helper.make_model(g)
        _canonical_names(model)
        return model.SerializeToString()

    assert graph("const_axes__72", "const_fold__9") == graph("const_starts__67", "const_fold__3")


def test_both_onnx_models_record_the_class_order(bundle: Bundle) -> None:
    """The order is stamped at export and survives quantization: a runtime checks the manifest against it."""
    import onnx

    from leukedge.bundle import CLASSES_KEY

    for key in ("onnx_fp32", "onnx_int8"):
        meta = {p.key: p.value for p in onnx.load(str(bundle.path_of(key)), load_external_data=False).metadata_props}
        assert json.loads(meta[CLASSES_KEY]) == list(bundle.manifest.classes), key
