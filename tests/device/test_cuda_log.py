"""The CUDA LoG equals the CPU reference (``leukedge.preprocess.enhance``) within TOLERANCE_GREY.

Here the kernel text runs on the CPU (gcc); the ``gpu`` tests run it through
nvcc on a GPU (tools/gpu_check.sh).  Real C-NMC cells, every border mode,
both Laplacian apertures, both layouts and channel orders.
"""

from __future__ import annotations

import sys
import time
import types
from dataclasses import replace

import numpy as np
import pytest

from leukedge.device.cuda_log import TOLERANCE_GREY, CudaLog, kernel_source
from leukedge.device.preprocessing import choose_preprocess, make_preprocessor
from leukedge.errors import HardwareUnavailableError, InvalidInputError
from leukedge.manifest import LogSpec, Preprocessing
from leukedge.preprocess import enhance
from tests.device.device_helpers import build_kernel_on_cpu, c_compiler, enhance_on_cpu

DEFAULT = Preprocessing()
VARIANTS = {
    "default": DEFAULT,
    "reflect-aperture1-ksize7": replace(
        DEFAULT, log=LogSpec(border="reflect", laplacian_aperture=1, gaussian_ksize=7, gaussian_sigma=1.6)
    ),
    "replicate-NCHW-BGR": replace(DEFAULT, layout="NCHW", channel_order="BGR", log=LogSpec(border="replicate")),
    "constant-alpha1-offset": replace(
        DEFAULT, scale=2.0 / 255.0, offset=-1.0, log=LogSpec(border="constant", alpha=1.0, gaussian_ksize=3)
    ),
    "log-disabled": replace(DEFAULT, log=LogSpec(enabled=False)),
}


def _max_grey_error(a: np.ndarray, b: np.ndarray, spec: Preprocessing) -> float:
    return float(np.abs(a - b).max() / spec.scale)


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory):
    if c_compiler() is None:
        pytest.skip("no C compiler (gcc) to run the kernel text on the CPU")
    return tmp_path_factory.mktemp("kernels")


@pytest.mark.shared_data
@pytest.mark.parametrize("name", list(VARIANTS))
def test_kernel_text_matches_reference_on_real_cells(name, real_crops, kernel_dir) -> None:
    spec = VARIANTS[name]
    mine = enhance_on_cpu(build_kernel_on_cpu(spec, kernel_dir), real_crops, spec)
    ref = enhance(real_crops, spec)
    assert mine.shape == ref.shape and mine.dtype == np.float32
    assert _max_grey_error(mine, ref, spec) <= TOLERANCE_GREY


@pytest.mark.parametrize("border", ["reflect101", "reflect", "replicate", "constant"])
@pytest.mark.parametrize("aperture", [1, 3])
def test_kernel_text_on_noise_every_border_and_aperture(border, aperture, kernel_dir, rng) -> None:
    """Noise is the worst case: the largest Laplacians, so the largest float32 rounding differences."""
    spec = replace(DEFAULT, log=LogSpec(border=border, laplacian_aperture=aperture, alpha=0.5))
    batch = rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    mine = enhance_on_cpu(build_kernel_on_cpu(spec, kernel_dir), batch, spec)
    assert _max_grey_error(mine, enhance(batch, spec), spec) <= TOLERANCE_GREY


def test_kernel_text_catches_a_wrong_weight(kernel_dir, rng) -> None:
    """The comparison is sharp enough to see a one-ulp-level change of the Gaussian, not just gross bugs."""
    spec = DEFAULT
    other = replace(DEFAULT, log=replace(DEFAULT.log, gaussian_sigma=1.01))
    batch = rng.integers(0, 256, (1, 128, 128, 3), dtype=np.uint8)
    wrong = enhance_on_cpu(build_kernel_on_cpu(other, kernel_dir), batch, other)
    assert _max_grey_error(wrong, enhance(batch, spec), spec) > 10 * TOLERANCE_GREY


def test_log_at_source_resolution_is_refused_before_any_gpu_work() -> None:
    at_source = replace(DEFAULT, log=LogSpec(apply_at="source"))
    with pytest.raises(HardwareUnavailableError, match="source resolution"):
        kernel_source(at_source)
    with pytest.raises(HardwareUnavailableError):
        CudaLog(at_source)


def test_preprocess_cpu_and_auto_without_cuda(monkeypatch) -> None:
    monkeypatch.setattr("leukedge.device.preprocessing.cuda_problem", lambda device=0: "pycuda is not installed")
    assert choose_preprocess("cpu", DEFAULT)[0] == "cpu"
    kind, why = choose_preprocess("auto", DEFAULT)
    assert kind == "cpu" and "pycuda" in why
    assert make_preprocessor("auto", DEFAULT).name == "cpu"
    with pytest.raises(InvalidInputError, match="--preprocess"):
        choose_preprocess("gpu", DEFAULT)


def test_forced_cuda_without_pycuda_is_a_hardware_error(monkeypatch) -> None:
    monkeypatch.setattr("leukedge.device.cuda_context.has", lambda name: False)
    with pytest.raises(HardwareUnavailableError) as err:
        choose_preprocess("cuda", DEFAULT)
    assert "--preprocess cuda" in err.value.message and "pycuda is not installed" in err.value.message
    assert "--preprocess auto or cpu" in (err.value.hint or "")
    assert err.value.exit_code == 6


def test_forced_cuda_with_pycuda_but_no_device(monkeypatch) -> None:
    """pycuda imports, but the driver finds no GPU (a laptop, a container without --gpus)."""

    def init() -> None:
        raise RuntimeError("cuInit failed: no CUDA-capable device is detected")

    driver = types.SimpleNamespace(init=init, Device=types.SimpleNamespace(count=lambda: 0))
    pkg = types.ModuleType("pycuda")
    pkg.driver = driver  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.setattr("leukedge.device.cuda_context.has", lambda name: True)
    with pytest.raises(HardwareUnavailableError, match="no CUDA-capable device"):
        choose_preprocess("cuda", DEFAULT)


def test_forced_cuda_with_log_at_source_falls_back_to_cpu_and_says_so(caplog) -> None:
    at_source = replace(DEFAULT, log=LogSpec(apply_at="source"))
    with caplog.at_level("WARNING"):
        kind, why = choose_preprocess("cuda", at_source)
    assert kind == "cpu" and "source resolution" in why
    assert "using the CPU" in caplog.text


# -- on a GPU (tools/gpu_check.sh) -------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.shared_data
@pytest.mark.parametrize("name", list(VARIANTS))
def test_cuda_log_matches_reference_on_real_cells(name, real_crops) -> None:
    spec = VARIANTS[name]
    with CudaLog(spec, max_batch=32) as k:  # 48 crops: two launches, the second partial
        mine = k.enhance(real_crops)
        single = k.enhance(real_crops[:1])
    ref = enhance(real_crops, spec)
    assert mine.shape == ref.shape
    err = _max_grey_error(mine, ref, spec)
    print(f"\n{name}: max |cuda - cpu| = {err:.2e} grey levels (tolerance {TOLERANCE_GREY:g})")
    assert err <= TOLERANCE_GREY
    np.testing.assert_array_equal(single, mine[:1])


@pytest.mark.gpu
@pytest.mark.shared_data
def test_cuda_log_equals_the_kernel_text_on_the_cpu_bit_for_bit(real_crops, kernel_dir) -> None:
    """Same source, IEEE float32, no FMA on either side: the GPU and gcc agree exactly."""
    with CudaLog(DEFAULT) as k:
        gpu = k.enhance(real_crops)
    cpu = enhance_on_cpu(build_kernel_on_cpu(DEFAULT, kernel_dir), real_crops, DEFAULT)
    print(f"\nmax |gpu - gcc| = {np.abs(gpu - cpu).max():.2e}")
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.shared_data
def test_cuda_log_kernel_times_next_to_the_cpu_reference(real_crops) -> None:
    batch = np.concatenate([real_crops, real_crops[:16]])  # 64 crops
    with CudaLog(DEFAULT, max_batch=64) as k:
        k.enhance(batch)  # warm-up (module load, first launch)
        t0 = time.perf_counter()
        for _ in range(20):
            k.enhance(batch)
        gpu_ms = (time.perf_counter() - t0) / 20 * 1000
        timings = dict(k.timings)
        compile_s = k.compile_s
    t0 = time.perf_counter()
    for _ in range(3):
        enhance(batch, DEFAULT)
    cpu_ms = (time.perf_counter() - t0) / 3 * 1000
    print(
        f"\nLoG on 64 crops of 128×128: CUDA {gpu_ms:.2f} ms per batch (kernels {timings['kernel_ms']:.3f} ms, "
        f"copy in {timings['h2d_ms']:.3f} ms, out {timings['d2h_ms']:.3f} ms; compile {compile_s:.1f} s) | "
        f"CPU reference {cpu_ms:.1f} ms"
    )
    assert timings["kernel_ms"] > 0
