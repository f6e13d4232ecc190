"""The acceptance gate: its metrics, its verdict, the exclusion search, and a gate that fails for real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from leukedge.bundle import Bundle
from leukedge.cli import main
from leukedge.converters.gate import GateThresholds, auc, compare, fp32_parity, gate_table, int8_verdict, judge
from leukedge.converters.search import keep_in_float, rank_layers
from leukedge.device.runtimes import choose_precision, resolve_model
from leukedge.images import read_image
from tests.converters.tinymodels import synthetic_sets, trained_tiny


def test_auc_matches_the_pairwise_definition(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 300)
    p = np.round(rng.random(300) + 0.3 * y, 2)  # rounded: ties on purpose
    pos, neg = p[y == 1], p[y == 0]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        len(pos) * len(neg)
    )
    assert auc(y, p) == pytest.approx(pairwise)
    assert auc(np.ones(5), rng.random(5)) is None


def test_compare_counts_flips_and_rate_deltas() -> None:
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    ref = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.2, 0.3, 0.6])  # sens 75 %, spec 75 %
    new = np.array([0.9, 0.8, 0.4, 0.2, 0.1, 0.2, 0.3, 0.4])  # one ALL lost, one hem gained
    m = compare(y, ref, new, 0.5)
    assert m["flips"] == 2 and m["flip_rate"] == 0.25
    assert m["sensitivity_delta"] == pytest.approx(-25.0) and m["specificity_delta"] == pytest.approx(25.0)
    reasons = judge(m, GateThresholds())
    assert len(reasons) == 3 and "label flips 25.00% > 1.00%" in reasons[0]
    assert judge(compare(y, ref, ref + 0.01, 0.5), GateThresholds()) == []
    assert judge(m, GateThresholds(max_flip_rate=0.3, max_sens_delta=30, max_spec_delta=30)) == []
    assert (
        "AUC dropped"
        in judge(
            compare(y, ref, 1 - ref, 0.5),
            GateThresholds(max_flip_rate=1, max_sens_delta=100, max_spec_delta=100, max_auc_drop=0.01),
        )[0]
    )


def test_fp32_parity_limit() -> None:
    p = np.linspace(0, 1, 50)
    assert fp32_parity(p, p + 5e-5, GateThresholds())["passed"]
    bad = fp32_parity(p, p + np.r_[np.zeros(49), 2e-4], GateThresholds())
    assert not bad["passed"] and bad["max_abs_delta_p"] == pytest.approx(2e-4)


def _parity(y: np.ndarray, ref: np.ndarray, new: np.ndarray) -> dict:
    return {"int8": int8_verdict(compare(y, ref, new, 0.5), GateThresholds(), 0.5).to_dict()}


def test_the_table_says_when_the_fp32_model_gives_every_cell_one_label() -> None:
    y = np.array([1, 1, 1, 0, 0, 0])
    collapsed = np.full(6, 0.9)  # every cell ALL: INT8 agrees, so the gate passes
    table = gate_table(_parity(y, collapsed, collapsed + 0.01))
    assert "verdict: PASS" in table
    assert "labels every validation cell ALL" in table and "leukedge evaluate" in table
    assert "every validation cell normal" in gate_table(_parity(y, 1 - collapsed, 1 - collapsed))
    useful = np.array([0.9, 0.8, 0.3, 0.1, 0.2, 0.6])
    assert "note:" not in gate_table(_parity(y, useful, useful))
    only_all = np.ones(3, int)  # no normal cells: specificity is undefined, nothing to say
    assert "note:" not in gate_table(_parity(only_all, np.full(3, 0.9), np.full(3, 0.9)))


def _search_fakes(sensitive: dict, passes_when: set):  # type: ignore[no-untyped-def]
    """build() returns the excluded set; drift falls as sensitive layers go float; gate passes on a set."""

    def build(excluded):  # type: ignore[no-untyped-def]
        return frozenset(excluded)

    def drift(handle) -> float:  # type: ignore[no-untyped-def]
        return 1.0 - sum(sensitive.get(n, 0.0) for n in handle)

    def gate(handle):  # type: ignore[no-untyped-def]
        ok = passes_when <= handle
        return {"flip_rate": 0.0 if ok else 0.05}, [] if ok else ["flips"]

    return build, drift, gate


def test_search_keeps_the_most_sensitive_layers_in_float() -> None:
    layers = ["conv1", "conv2", "conv3", "fc1", "fc2", "predictions"]
    build, drift, gate = _search_fakes({"conv1": 0.5, "predictions": 0.3, "fc1": 0.1}, {"conv1", "predictions"})
    assert [name for name, _ in rank_layers(layers, build, drift)][:3] == ["conv1", "predictions", "fc1"]
    result = keep_in_float(layers, build, drift, gate)
    assert result.passed and result.excluded == ["conv1", "predictions"]
    assert [a["passed"] for a in result.attempts] == [False, True]


def test_search_gives_up_at_half_the_layers() -> None:
    layers = ["a", "b", "c", "d"]
    build, drift, gate = _search_fakes({"a": 0.2}, {"a", "b", "c"})
    result = keep_in_float(layers, build, drift, gate)
    assert not result.passed and len(result.attempts) == 2
    assert "still failing with 2 of 4 layers in float" in result.reasons[-1]
    assert not keep_in_float(layers, build, drift, gate, max_excluded=0).passed


def _dim_copy(src: Path, dst: Path, factor: float) -> Path:
    """A calibration set no microscope gives: the same cells at a fraction of their brightness."""
    for p in sorted(src.rglob("*.png")):
        q = dst / p.relative_to(src)
        q.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((read_image(p) * factor).astype(np.uint8)).save(q)
    return dst


@pytest.mark.slow
def test_unrepresentative_calibration_fails_the_gate(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.getbasetemp() / "tiny"
    root.mkdir(exist_ok=True)
    train, val = synthetic_sets(root)
    dim = _dim_copy(train, root / "syn_dim", 0.15)
    out = root / "dim-bundle"
    r = CliRunner().invoke(
        main, ["convert", str(trained_tiny(root)), "--out", str(out), "--calib-data", str(dim), "--validate", str(val)]
    )
    assert r.exit_code == 7, r.output  # GateFailedError
    assert "Error: INT8 fails the acceptance gate" in r.output and "verdict: FAIL" in r.output
    assert "per-layer pass: ranking 4 layer(s)" in r.output
    int8 = Bundle.load(out).manifest.parity["int8"]
    assert int8["passed"] is False and int8["metrics"]["flip_rate"] > 0.01
    assert len(int8["sensitivity"]) == 4 and len(int8["attempts"]) == 2 and int8["excluded_nodes"] == []
    assert choose_precision(resolve_model(out), "onnxruntime", "auto") == "fp32"  # auto never serves it
    assert "INT8 gate (200 labelled cells" in gate_table(Bundle.load(out).manifest.parity)


def _hostile_model(root: Path) -> Path:
    """The tiny model with one layer INT8 cannot represent and FP32 does not notice.

    Channel 0 of block2_conv1 is made dead (always 0 after ReLU); fc1 gets weights of 1000
    on the features of that channel.  In FP32 they multiply zeros; in per-channel INT8 they
    set every scale of fc1 so high that all its real weights round to zero.
    """
    from leukedge.trainer.modelio import load_model, save_model

    model, manifest = load_model(trained_tiny(root))
    conv = model.get_layer("block2_conv1")
    kernel, bias = conv.get_weights()
    kernel[..., 0], bias[0] = 0.0, -1.0
    conv.set_weights([kernel, bias])
    fc1 = model.get_layer("fc1")
    weights, fc_bias = fc1.get_weights()
    weights[0::16, :] = 1000.0  # Flatten is H×W×C: every 16th feature is channel 0
    fc1.set_weights([weights, fc_bias])
    return save_model(model, root / "hostile.h5", manifest)


@pytest.mark.slow
def test_a_layer_int8_cannot_represent_is_found_and_kept_in_float(tmp_path_factory) -> None:
    import onnx

    from leukedge.converters.convert import ConvertOptions, convert_model

    root = tmp_path_factory.getbasetemp() / "tiny"
    root.mkdir(exist_ok=True)
    train, val = synthetic_sets(root)
    options = ConvertOptions(out=root / "hostile-bundle", calib_data=train, validate=val)
    messages: list = []
    result = convert_model(_hostile_model(root), options, echo=messages.append)
    int8 = result.bundle.manifest.parity["int8"]
    assert any("INT8 fails the gate" in m for m in messages)  # plain INT8 failed first
    assert int8["passed"] is True and len(int8["excluded_nodes"]) == 1 and "fc1" in int8["excluded_nodes"][0]
    assert int8["sensitivity"][0]["node"] == int8["excluded_nodes"][0]  # ranked most sensitive
    assert choose_precision(resolve_model(result.bundle.root), "onnxruntime", "auto") == "int8"
    graph = onnx.load(str(result.bundle.path_of("onnx_int8"))).graph
    producer = {o: n for n in graph.node for o in n.output}
    (fc1,) = [n for n in graph.node if n.name == int8["excluded_nodes"][0]]
    assert fc1.input[1] in {t.name for t in graph.initializer}  # float weights
    src = producer[fc1.input[0]]
    while src.op_type in ("Reshape", "Transpose", "MaxPool"):  # what ONNX Runtime would move a DQ across
        src = producer[src.input[0]]
    assert src.op_type != "DequantizeLinear"  # so ONNX Runtime cannot re-quantize it at load time
