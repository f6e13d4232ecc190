"""TensorRTRuntime's own logic against fakes of tensorrt and pycuda; real TensorRT under the ``tensorrt`` marker."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from leukedge.device.runtimes import open_runtime
from leukedge.device.runtimes.tensorrt_runtime import TensorRTRuntime, import_tensorrt
from leukedge.errors import BundleError, InvalidInputError, MissingDependencyError
from leukedge.extras import has
from tests.device.gpu_fakes import CALLS, EngineSpec, engine_output, fake_engine_file, install


@pytest.fixture
def engine_file(tmp_path) -> Path:
    return fake_engine_file(tmp_path)


_expected = engine_output  # what the fake engine computes


@pytest.mark.parametrize("api", ["tensor", "binding"])
def test_batches_are_split_at_the_profile_maximum_and_results_come_back_in_order(
    api, monkeypatch, bundle, engine_file, rng
) -> None:
    install(monkeypatch, EngineSpec(profile_max=16), api=api)
    x = rng.uniform(0, 1, (40, 128, 128, 3)).astype(np.float32)
    with TensorRTRuntime(bundle, "fp16", max_batch=32, engine_path=engine_file) as rt:
        assert rt.max_batch == 16  # the engine's profile caps the requested 32
        probs = rt.predict(x)
        p_all = rt.p_all(x[:3])
    np.testing.assert_allclose(probs, _expected(x), rtol=1e-5)
    np.testing.assert_allclose(p_all, _expected(x[:3])[:, 1], rtol=1e-5)
    runs = [c[1] for c in CALLS if c[0].startswith("execute_async")]
    assert runs == [16, 16, 8, 3]
    shape_calls = [c for c in CALLS if c[0] in ("set_input_shape", "set_binding_shape")]
    assert shape_calls[0][-1] == (16, 128, 128, 3) and shape_calls[2][-1] == (8, 128, 128, 3)
    assert ("sync",) in CALLS
    assert CALLS.count(("pop",)) == CALLS.count(("push",)) and ("detach",) in CALLS  # context released
    assert sum(1 for c in CALLS if c[0] == "free") == 2  # both device buffers freed on close


def test_a_fixed_batch_engine_is_fed_padded_batches(monkeypatch, bundle, engine_file, rng) -> None:
    install(monkeypatch, EngineSpec(shape=(8, 128, 128, 3)))
    x = rng.uniform(0, 1, (3, 128, 128, 3)).astype(np.float32)
    with TensorRTRuntime(bundle, "fp32", engine_path=engine_file) as rt:
        assert rt.max_batch == 8
        probs = rt.predict(x)
    np.testing.assert_allclose(probs, _expected(x), rtol=1e-5)
    assert [c[1] for c in CALLS if c[0] == "execute_async_v3"] == [8]
    assert not [c for c in CALLS if c[0] == "set_input_shape"]


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (EngineSpec(inp="images"), r"inputs are \['images'\].*does not match its manifest"),
        (EngineSpec(shape=(-1, 64, 64, 3)), r"shape \[-1, 64, 64, 3\].*does not match its manifest"),
        (EngineSpec(classes=3), "outputs 3 classes"),
        (EngineSpec(dtype="float16"), "expected float32 I/O"),
    ],
)
def test_an_engine_that_does_not_match_the_manifest_is_refused(spec, match, monkeypatch, bundle, engine_file) -> None:
    install(monkeypatch, spec)
    rt = TensorRTRuntime(bundle, "fp16", engine_path=engine_file)
    with pytest.raises(BundleError, match=match):
        rt.open()
    assert ("detach",) in CALLS  # nothing left behind


def test_an_unloadable_engine_says_to_delete_it(monkeypatch, bundle, tmp_path) -> None:
    install(monkeypatch)
    bad = tmp_path / "stale.engine"
    bad.write_bytes(b"built by TensorRT 8.6 on another GPU")
    with pytest.raises(BundleError, match="cannot load this engine") as err:
        TensorRTRuntime(bundle, "fp16", engine_path=bad).open()
    assert str(bad) in (err.value.hint or "")


def test_the_engine_comes_from_the_converters_cache(monkeypatch, bundle, engine_file) -> None:
    install(monkeypatch)
    asked = []

    def load_or_build_engine(b, precision, max_batch):
        asked.append((b.root, precision, max_batch))
        return engine_file

    fake = types.ModuleType("leukedge.device.trt_engine")
    fake.load_or_build_engine = load_or_build_engine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "leukedge.device.trt_engine", fake)
    with open_runtime(bundle, backend="tensorrt", precision="int8", max_batch=24) as rt:
        assert isinstance(rt, TensorRTRuntime) and rt.describe().startswith("tensorrt int8 (batch ≤ 16, Fake GPU")
    assert asked == [(bundle.root, "int8", 24)]


def test_bad_precision_and_batch_are_refused_before_anything_loads(bundle) -> None:
    with pytest.raises(InvalidInputError, match="--precision"):
        TensorRTRuntime(bundle, "int4")
    with pytest.raises(InvalidInputError, match="max_batch"):
        TensorRTRuntime(bundle, "fp16", max_batch=0)


def test_constructing_the_runtime_imports_no_vendor_library(bundle) -> None:
    rt = open_runtime(bundle, backend="tensorrt", precision="fp16")
    assert isinstance(rt, TensorRTRuntime)
    assert "tensorrt" not in sys.modules or not hasattr(sys.modules["tensorrt"], "Runtime")
    assert "pycuda" not in sys.modules


def test_type_stubs_alone_are_not_mistaken_for_tensorrt(monkeypatch, tmp_path) -> None:
    """``pip install tensorrt-stubs`` leaves a bare tensorrt/ folder that imports as an empty namespace."""
    (tmp_path / "tensorrt").mkdir()
    (tmp_path / "tensorrt" / "__init__.pyi").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    with pytest.raises(MissingDependencyError, match="tensorrt"):
        import_tensorrt()
    assert not has("tensorrt")  # so --backend auto does not pick TensorRT on a machine with stubs only


# -- real TensorRT (tools/gpu_check.sh on a machine that has it) ------------------------------


@pytest.mark.tensorrt
def test_real_engine_agrees_with_onnxruntime(bundle, rng) -> None:
    x = rng.uniform(0, 1, (20, 128, 128, 3)).astype(np.float32)
    with open_runtime(bundle, backend="onnxruntime", precision="fp32") as ort:
        ref = ort.predict(x)
    with open_runtime(bundle, backend="tensorrt", precision="fp32", max_batch=8) as rt:
        got = rt.predict(x)
    np.testing.assert_allclose(got, ref, atol=1e-3)
