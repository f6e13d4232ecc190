"""The GPU path that stays on the GPU: the CUDA LoG writes into the TensorRT input binding, no host round trip.

On the fakes of tests/device/gpu_fakes.py (device memory as bytearrays, every
copy counted) with the kernel text run on the CPU (tests/device/kernel_fakes.py);
on a real GPU under the ``tensorrt`` marker (tools/gpu_check.sh).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leukedge.device.cuda_log import TOLERANCE_GREY, CudaLog
from leukedge.device.gpu_path import GpuClassifier, can_stay_on_gpu
from leukedge.device.pipeline import Pipeline
from leukedge.device.preprocessing import CudaPreprocessor
from leukedge.device.runtimes.tensorrt_runtime import TensorRTRuntime
from leukedge.device.sources import make_source
from leukedge.preprocess import enhance
from tests.device.device_helpers import SMALL_SYNTHETIC, c_compiler
from tests.device.gpu_fakes import CALLS, MEMORY, EngineSpec, engine_output, fake_engine_file, install
from tests.device.kernel_fakes import install_kernels

CROP_BYTES = 128 * 128 * 3  # one uint8 crop
INPUT_BYTES = CROP_BYTES * 4  # one float32 model input


@pytest.fixture
def fakes(monkeypatch, tmp_path) -> Path:
    if c_compiler() is None:
        pytest.skip("no C compiler (gcc) to run the kernel text on the CPU")
    install(monkeypatch, EngineSpec(profile_max=16))
    install_kernels(monkeypatch, tmp_path)
    return fake_engine_file(tmp_path)


def _copies(kind: str) -> list:
    return [c[1] for c in CALLS if c[0] == kind]


def test_the_log_output_goes_into_the_engine_input_and_only_probabilities_come_back(fakes, bundle, rng) -> None:
    crops = rng.integers(0, 256, (20, 128, 128, 3), dtype=np.uint8)
    spec = bundle.manifest.preprocessing
    with TensorRTRuntime(bundle, "fp16", max_batch=32, engine_path=fakes) as rt:
        prep = CudaPreprocessor(spec, max_batch=rt.max_batch).open()
        try:
            assert can_stay_on_gpu(prep, rt)
            gpu = GpuClassifier(prep, rt)
            CALLS.clear()
            probs = gpu.predict(list(crops))
            binding = np.frombuffer(bytes(MEMORY[int(rt._bufs["d_in"])][: 4 * INPUT_BYTES]), np.float32)
        finally:
            prep.close()
    reference = enhance(crops, spec)
    # The last chunk (4 crops) is what the input binding holds now: read back from the device, it is the
    # CPU reference.
    np.testing.assert_allclose(binding.reshape(4, 128, 128, 3), reference[16:], atol=TOLERANCE_GREY * spec.scale)
    np.testing.assert_allclose(probs, engine_output(reference), rtol=1e-5, atol=1e-6)
    # Host copies: the uint8 crops in, (n, 2) probabilities out, per engine call (16 + 4); no float32 batch.
    assert _copies("htod") == [16 * CROP_BYTES, 4 * CROP_BYTES]
    assert _copies("dtoh") == [16 * 2 * 4, 4 * 2 * 4]
    assert [c[1] for c in CALLS if c[0] == "execute_async_v3"] == [16, 4]
    assert CALLS.count(("sync",)) == 2  # one synchronisation per engine call, after the output copy


def test_the_host_path_copies_the_float_batch_both_ways(fakes, bundle, rng) -> None:
    """What the GPU path saves: CudaLog.enhance (kept for ONNX Runtime and the parity tests) + predict."""
    crops = rng.integers(0, 256, (4, 128, 128, 3), dtype=np.uint8)
    with TensorRTRuntime(bundle, "fp16", engine_path=fakes) as rt, CudaLog(bundle.manifest.preprocessing) as log:
        CALLS.clear()
        rt.predict(log.enhance(crops))
    assert _copies("htod") == [4 * CROP_BYTES, 4 * INPUT_BYTES]
    assert _copies("dtoh")[0] == 4 * INPUT_BYTES


def test_a_device_batch_larger_than_the_engine_takes_is_refused(fakes, bundle) -> None:
    from leukedge.errors import InvalidInputError

    with TensorRTRuntime(bundle, "fp16", engine_path=fakes) as rt:
        with pytest.raises(InvalidInputError, match="device batch of 17"):
            rt.run_from_device(17, lambda dest, stream: None)


def test_the_pipeline_with_cuda_preprocessing_and_tensorrt_stays_on_the_gpu(fakes, bundle, monkeypatch) -> None:
    monkeypatch.setattr("leukedge.device.trt_engine.load_or_build_engine", lambda *a, **k: fakes)
    runs = {}
    for mode in ("cpu", "cuda"):
        rt = TensorRTRuntime(bundle, "fp16")
        pipe = Pipeline(make_source(SMALL_SYNTHETIC + "&frames=3"), rt, preprocess=mode, deliver=True)
        assert pipe.preprocess_kind == mode
        CALLS.clear()
        pipe.deliver_results()
        pipe.start()
        runs[mode] = [c.p_all for r in pipe.results() for c in r.cells]
        pipe.close()
        assert (pipe.models.gpu_path is not None) == (mode == "cuda")
        if mode == "cuda":
            assert all(n % CROP_BYTES == 0 and n // CROP_BYTES <= 16 for n in _copies("htod"))  # uint8 only
    assert len(runs["cpu"]) == len(runs["cuda"]) == 9
    np.testing.assert_allclose(runs["cuda"], runs["cpu"], atol=1e-5)


# -- on a real GPU (tools/gpu_check.sh) -------------------------------------------------------


def _count_copies(monkeypatch, driver) -> list:
    """Record every async host↔device copy pycuda makes from now on: (direction, bytes)."""
    seen: list = []
    for name in ("memcpy_htod_async", "memcpy_dtoh_async"):
        real = getattr(driver, name)

        def counted(dest, src, stream=None, _real=real, _name=name):  # type: ignore[no-untyped-def]
            host = src if _name == "memcpy_htod_async" else dest
            seen.append((_name[7:11], int(host.nbytes)))
            return _real(dest, src, stream)

        monkeypatch.setattr(driver, name, counted)
    return seen


@pytest.mark.gpu
def test_on_a_gpu_the_log_written_to_a_device_buffer_is_the_cpu_reference_with_one_copy_in(
    real_crops, monkeypatch
) -> None:
    import pycuda.driver as cuda

    from leukedge.device.cuda_log import output_shape
    from leukedge.manifest import Preprocessing

    spec, n = Preprocessing(), len(real_crops)
    with CudaLog(spec, max_batch=n) as log:
        with log._ctx:  # type: ignore[union-attr]
            dest, stream = cuda.mem_alloc(n * INPUT_BYTES), cuda.Stream()
            copies = _count_copies(monkeypatch, cuda)
            log.enhance_into(real_crops, dest, stream)
            stream.synchronize()
            monkeypatch.undo()  # stop counting before the test's own read-back
            on_device = np.empty(output_shape(n, spec), np.float32)
            cuda.memcpy_dtoh(on_device, dest)
            dest.free()
    assert copies == [("htod", n * CROP_BYTES)]  # the uint8 crops in; nothing back
    err = float(np.abs(on_device - enhance(real_crops, spec)).max() / spec.scale)
    print(f"\nCUDA LoG into a device buffer: {n} real cells, max |gpu - cpu| = {err:.2e} grey levels, copies {copies}")
    assert err <= TOLERANCE_GREY


@pytest.mark.tensorrt
def test_on_tensorrt_the_gpu_path_gives_what_the_host_path_gives(bundle, rng, monkeypatch) -> None:
    import pycuda.driver as cuda

    crops = rng.integers(0, 256, (24, 128, 128, 3), dtype=np.uint8)
    with TensorRTRuntime(bundle, "fp32", max_batch=16) as rt:
        prep = CudaPreprocessor(bundle.manifest.preprocessing, max_batch=rt.max_batch).open()
        try:
            host = rt.predict(prep.prepare(list(crops)))
            copies = _count_copies(monkeypatch, cuda)
            on_gpu = GpuClassifier(prep, rt).predict(list(crops))
        finally:
            prep.close()
    assert [c for c in copies if c[0] == "htod"] == [("htod", 16 * CROP_BYTES), ("htod", 8 * CROP_BYTES)]
    assert [c for c in copies if c[0] == "dtoh"] == [("dtoh", 16 * 2 * 4), ("dtoh", 8 * 2 * 4)]
    np.testing.assert_allclose(on_gpu, host, atol=1e-5)
