"""Engine keys, cache files, rebuilds and the TensorRT 8/10 API paths, through a fake tensorrt module.

The real build runs on a Jetson or GPU machine (``tensorrt`` marker, at the end).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from leukedge.bundle import Bundle, write_bundle
from leukedge.device import trt_engine
from leukedge.device.trt_engine import engine_key, load_or_build_engine
from leukedge.errors import BundleError, HardwareUnavailableError, InvalidInputError, MissingDependencyError
from leukedge.manifest import Manifest, Preprocessing
from tests.converters.fake_tensorrt import make_fake_tensorrt

GPU = "NVIDIA Orin (sm_87)"


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "model.onnx").write_bytes(b"fp32 onnx")
    (root / "model.int8.onnx").write_bytes(b"int8 qdq onnx")
    manifest = Manifest(preprocessing=Preprocessing(input_height=64, input_width=64), parity={"int8": {"passed": True}})
    return write_bundle(root, manifest, {"onnx_fp32": "model.onnx", "onnx_int8": "model.int8.onnx"})


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    trt = make_fake_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(trt_engine, "gpu_name", lambda device=0: GPU)
    return trt


def _build(bundle: Bundle, precision: str = "int8", max_batch: int = 16, **kw):  # type: ignore[no-untyped-def]
    messages: list = []
    path = load_or_build_engine(bundle, precision, max_batch, log=messages.append, **kw)
    return path, messages


def test_key_names_model_precision_profile_version_and_gpu(bundle: Bundle, fake_trt) -> None:
    key = engine_key(bundle, "int8", 16)
    assert key.model_sha256 == bundle.manifest.files["onnx_int8"].sha256
    assert (key.precision, key.min_batch, key.opt_batch, key.max_batch) == ("int8", 1, 16, 16)
    assert (key.tensorrt, key.gpu) == ("10.3.0", GPU)
    fp16 = engine_key(bundle, "fp16", 16)
    assert fp16.model_sha256 == bundle.manifest.files["onnx_fp32"].sha256
    variants = [
        fp16,
        engine_key(bundle, "int8", 32),
        engine_key(bundle, "int8", 16, opt_batch=4),
        engine_key(bundle, "int8", 16, tensorrt="8.6.2"),
        engine_key(bundle, "int8", 16, gpu="NVIDIA GeForce RTX 4090 (sm_89)"),
    ]
    assert len({key.digest, *(v.digest for v in variants)}) == 6
    assert key.differences(replace(key, tensorrt="8.6.2").to_dict()) == ["tensorrt '8.6.2' (cached) vs '10.3.0' (here)"]


def test_bad_precision_and_batch_are_refused(bundle: Bundle, fake_trt) -> None:
    with pytest.raises(InvalidInputError, match="precision is 'int4'"):
        engine_key(bundle, "int4", 8)
    with pytest.raises(InvalidInputError, match="max_batch is 0"):
        engine_key(bundle, "fp16", 0)
    with pytest.raises(InvalidInputError, match="opt_batch is 64"):
        engine_key(bundle, "fp16", 8, opt_batch=64)


def test_builds_once_into_the_bundle_then_reuses(bundle: Bundle, fake_trt) -> None:
    path, messages = _build(bundle)
    assert path.parent == bundle.root / "engines" and path.name == "int8-b1-16-16.engine"
    assert path.read_bytes().startswith(b"ENGINE onnx=model.int8.onnx flags=['INT8']")
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["key"] == engine_key(bundle, "int8", 16).to_dict()
    assert fake_trt.calls["profiles"] == [("input", (1, 64, 64, 3), (16, 64, 64, 3), (16, 64, 64, 3))]
    assert fake_trt.calls["network_flags"] == [0]  # TensorRT 10: always explicit batch
    assert any("Building engine (2 steps)" in m for m in messages)  # the progress monitor reported
    assert any("step 2/2" in m for m in messages)
    again, messages = _build(bundle)
    assert again == path and fake_trt.calls["builds"] == 1 and messages == []


def test_fp16_builds_from_the_fp32_onnx_with_the_fp16_flag(bundle: Bundle, fake_trt) -> None:
    path, _ = _build(bundle, "fp16", 8)
    assert path.read_bytes().startswith(b"ENGINE onnx=model.onnx flags=['FP16']")


def test_another_tensorrt_version_is_reported_and_rebuilt(bundle: Bundle, fake_trt, monkeypatch) -> None:
    path, _ = _build(bundle)
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt("10.7.0"))
    again, messages = _build(bundle)
    assert again == path
    assert any("cannot be used: built for another tensorrt '10.3.0' (cached) vs '10.7.0' (here)" in m for m in messages)
    assert b"trt=10.7.0" in path.read_bytes()


def test_another_gpu_is_reported_and_rebuilt(bundle: Bundle, fake_trt, monkeypatch) -> None:
    _build(bundle)
    monkeypatch.setattr(trt_engine, "gpu_name", lambda device=0: "NVIDIA Jetson Xavier NX (sm_72)")
    _, messages = _build(bundle)
    assert fake_trt.calls["builds"] == 2
    assert any("gpu 'NVIDIA Orin (sm_87)' (cached) vs 'NVIDIA Jetson Xavier NX (sm_72)' (here)" in m for m in messages)


def test_a_reconverted_model_is_rebuilt(bundle: Bundle, fake_trt) -> None:
    _build(bundle)
    (bundle.root / "model.int8.onnx").write_bytes(b"another int8 model")
    reconverted = write_bundle(
        bundle.root, bundle.manifest, {"onnx_fp32": "model.onnx", "onnx_int8": "model.int8.onnx"}
    )
    _, messages = _build(reconverted)
    assert fake_trt.calls["builds"] == 2 and any("model_sha256" in m for m in messages)


def test_a_truncated_or_replaced_engine_is_rebuilt_not_loaded(bundle: Bundle, fake_trt) -> None:
    path, _ = _build(bundle)
    path.write_bytes(path.read_bytes()[:10])
    _, messages = _build(bundle)
    assert fake_trt.calls["builds"] == 2 and any("does not match the SHA-256" in m for m in messages)
    path.with_suffix(".json").write_text("{not json")
    _, messages = _build(bundle)
    assert fake_trt.calls["builds"] == 3 and any("key file is unreadable" in m for m in messages)


def test_rebuild_on_request(bundle: Bundle, fake_trt) -> None:
    _build(bundle)
    _, messages = _build(bundle, rebuild=True)
    assert fake_trt.calls["builds"] == 2 and any("rebuild requested" in m for m in messages)


def test_read_only_bundle_uses_the_user_cache(bundle: Bundle, fake_trt, monkeypatch, tmp_path) -> None:
    real_writable = trt_engine._writable
    monkeypatch.setattr(
        trt_engine,
        "_writable",
        lambda folder: None if bundle.root in (folder, *folder.parents) else real_writable(folder),
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path, _ = _build(bundle)
    assert path.parent == tmp_path / "xdg" / "leukedge" / "engines" / bundle.model_hash[:16]
    assert not (bundle.root / "engines").exists()
    explicit, _ = _build(bundle, cache_dir=tmp_path / "mine")
    assert explicit.parent == tmp_path / "mine"


def test_the_packaged_reference_bundle_never_gets_engines_written_into_it(
    bundle, fake_trt, monkeypatch, tmp_path
) -> None:
    monkeypatch.setattr(trt_engine, "REFERENCE_BUNDLE", bundle.root)  # pretend this bundle is the packaged one
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path, _ = _build(bundle)
    assert path.parent == tmp_path / "xdg" / "leukedge" / "engines" / bundle.model_hash[:16]
    assert not (bundle.root / "engines").exists()


def test_timing_cache_is_saved_and_reused(bundle: Bundle, fake_trt) -> None:
    path, _ = _build(bundle, "int8")
    caches = list(path.parent.glob("timing-*.cache"))
    assert len(caches) == 1 and caches[0].read_bytes() == b"|timing"
    _build(bundle, "fp16")  # another engine on the same device starts from the saved timings
    assert fake_trt.calls["timing_in"] == [b"", b"|timing"]


def test_tensorrt_8_uses_the_explicit_batch_flag_and_an_elapsed_ticker(bundle: Bundle, fake_trt, monkeypatch) -> None:
    trt8 = make_fake_tensorrt("8.5.2", memory_pools=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt8)
    from leukedge.device import trt_build

    ticks: list = []
    monkeypatch.setattr(trt_build, "ElapsedTicker", lambda log: _Recorder(ticks))
    _build(bundle, workspace_mb=256)
    assert trt8.calls["network_flags"] == [1]  # 1 << EXPLICIT_BATCH
    assert trt8.calls["workspace"] == 256 << 20  # max_workspace_size on a builder without memory pools
    assert ticks == ["enter", "exit"]


class _Recorder:
    def __init__(self, events: list) -> None:
        self.events = events

    def __enter__(self) -> _Recorder:
        self.events.append("enter")
        return self

    def __exit__(self, *exc: object) -> None:
        self.events.append("exit")


def test_parse_and_build_failures_are_clear(bundle: Bundle, monkeypatch) -> None:
    monkeypatch.setattr(trt_engine, "gpu_name", lambda device=0: GPU)
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt(parse_ok=False))
    with pytest.raises(BundleError, match="cannot parse this ONNX.*FancyOp"):
        _build(bundle)
    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt(build_ok=False))
    with pytest.raises(HardwareUnavailableError, match="failed to build a int8 engine"):
        _build(bundle)
    assert not list((bundle.root / "engines").glob("*.engine"))  # nothing half-written is left


def test_type_stubs_alone_are_not_tensorrt(bundle: Bundle, monkeypatch) -> None:
    import types

    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # what tensorrt-stubs imports as
    assert trt_engine.tensorrt_available() is False
    with pytest.raises(MissingDependencyError, match="type stubs"):
        load_or_build_engine(bundle, "int8", 8)


def test_ungated_int8_is_built_with_a_warning(bundle: Bundle, fake_trt) -> None:
    manifest = replace(bundle.manifest, parity={"int8": {"passed": False}})
    ungated = write_bundle(bundle.root, manifest, {"onnx_fp32": "model.onnx", "onnx_int8": "model.int8.onnx"})
    _, messages = _build(ungated)
    assert any("has not passed the acceptance gate" in m for m in messages)


@pytest.mark.tensorrt
def test_real_engine_builds_and_deserializes(tmp_path: Path) -> None:
    """On a Jetson / GPU machine: real FP16 and INT8 engines from the packaged reference bundle."""
    import tensorrt as trt

    from leukedge.bundle import REFERENCE_BUNDLE

    if not (REFERENCE_BUNDLE / "manifest.json").is_file():
        pytest.skip(f"the reference bundle is not built yet ({REFERENCE_BUNDLE})")
    bundle = Bundle.load("reference")
    for precision in ("fp16", "int8"):
        messages: list = []
        path = load_or_build_engine(bundle, precision, 8, cache_dir=tmp_path, log=messages.append)
        engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(path.read_bytes())
        assert engine is not None, (precision, messages)
        assert any("TensorRT engine built" in m for m in messages)
        assert load_or_build_engine(bundle, precision, 8, cache_dir=tmp_path, log=messages.append) == path


@pytest.mark.tensorrt
def test_tensorrt_agrees_with_the_gated_onnx(tmp_path: Path, monkeypatch) -> None:
    """On a GPU machine: TensorRT FP16 matches ONNX FP32, and TensorRT INT8 keeps ONNX INT8's labels."""
    import numpy as np

    from leukedge.bundle import REFERENCE_BUNDLE
    from leukedge.device.runtimes import open_runtime
    from leukedge.preprocess import preprocess
    from leukedge.synthetic import make_cell_image

    if not (REFERENCE_BUNDLE / "manifest.json").is_file():
        pytest.skip(f"the reference bundle is not built yet ({REFERENCE_BUNDLE})")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # engines of the packaged bundle go to the user cache
    bundle = Bundle.load("reference")
    crops = [
        make_cell_image(i, ("hem", "all")[i % 2], size=bundle.manifest.preprocessing.crop.canvas_px) for i in range(64)
    ]
    x = preprocess(crops, bundle.manifest.preprocessing)
    p = {}
    for backend, precision in (
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
        ("tensorrt", "fp16"),
        ("tensorrt", "int8"),
    ):
        with open_runtime(bundle, backend=backend, precision=precision) as rt:
            p[(backend, precision)] = rt.p_all(x)
    assert np.abs(p[("tensorrt", "fp16")] - p[("onnxruntime", "fp32")]).max() < 0.01
    threshold = bundle.manifest.decision.threshold
    flips = np.mean((p[("tensorrt", "int8")] >= threshold) != (p[("onnxruntime", "int8")] >= threshold))
    assert flips <= 0.02, f"TensorRT INT8 and ONNX Runtime INT8 disagree on {100 * flips:.1f}% of cells"
