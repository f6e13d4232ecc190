"""The one place hardware markers and shared fixtures are declared.

Hardware tests carry ``gpu``, ``tensorrt`` or ``camera``; each skips with a
reason where that hardware or library is absent, and the same tests run
unchanged on a Jetson or GPU machine (``tools/gpu_check.sh``).  Tests that read
the real images in ``../shared/data`` skip with a reason where that folder is
absent; CI has it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LEUKEDGE_SHARED_DATA", REPO.parent / "shared" / "data"))

# In CI (.ci/run sets LEUKEDGE_CI=1) a missing tool or data folder is a failure, not a skip.
IN_CI = os.environ.get("LEUKEDGE_CI") == "1"

HARDWARE_MARKERS = {
    "gpu": "needs an NVIDIA GPU with a working driver and pycuda",
    "tensorrt": "needs TensorRT (JetPack, or NVIDIA's tensorrt wheel) and a GPU",
    "camera": "needs a real camera (Raspberry Pi camera, Jetson CSI or V4L2 device)",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, why in HARDWARE_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {why}")
    config.addinivalue_line("markers", "slow: takes more than ~10 s on a 2-core CPU")
    config.addinivalue_line("markers", "shared_data: reads the real images in ../shared/data")


def _cuda_usable() -> str | None:
    try:
        import pycuda.driver as cuda

        cuda.init()
        return None if cuda.Device.count() > 0 else "pycuda sees no CUDA device"
    except Exception as exc:  # ImportError, or a driver error
        return f"pycuda/CUDA not usable here ({type(exc).__name__}: {exc})"


def _tensorrt_usable() -> str | None:
    from leukedge.extras import has

    if not has("tensorrt"):  # type stubs alone do not count
        return "TensorRT is not installed here"
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:
        return f"TensorRT not importable here ({exc})"
    return _cuda_usable()


def _camera_usable() -> str | None:
    if os.environ.get("LEUKEDGE_CAMERA"):
        return None
    return "set LEUKEDGE_CAMERA=<source URI> on a machine with a camera to run camera tests"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    probes = {"gpu": _cuda_usable, "tensorrt": _tensorrt_usable, "camera": _camera_usable}
    answers: dict[str, str | None] = {}
    for item in items:
        for name, probe in probes.items():
            if name in item.keywords:
                if name not in answers:
                    answers[name] = probe()
                if answers[name]:
                    item.add_marker(pytest.mark.skip(reason=answers[name]))
        if "shared_data" in item.keywords and not SHARED_DATA.is_dir() and not IN_CI:
            item.add_marker(pytest.mark.skip(reason=f"real data folder {SHARED_DATA} is absent (CI has it)"))


def skip_or_fail(reason: str) -> None:
    """Skip where a tool or data set is absent; in CI, fail, because CI must have it."""
    if IN_CI:
        pytest.fail(f"{reason} (CI must provide it: see .ci/run and tools/system_deps.sh)")
    pytest.skip(reason)


def vermin_command() -> list:
    """The command that runs vermin in this interpreter (the one tools/test.sh installs it into).

    Looked up as a module of this Python, not on PATH: ``tools/test.sh`` runs
    ``.venv/bin/python -m pytest`` without ``.venv/bin`` on PATH, and a check
    skipped there would be no check.
    """
    import importlib.util
    import sys

    if importlib.util.find_spec("vermin") is None:
        skip_or_fail("vermin is not installed (dev extra: pip install -e '.[dev]')")
    return [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())"]


def require_program(name: str, *candidates: str) -> str:
    """Path of an installed program (e.g. mosquitto, chromium), or skip/fail."""
    for c in (name, *candidates):
        found = shutil.which(c) or (c if os.path.isabs(c) and os.access(c, os.X_OK) else None)
        if found:
            return found
    skip_or_fail(f"{name} is not installed (Debian package: see tools/system_deps.sh)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        skip_or_fail(f"real data folder {SHARED_DATA} is absent (CI has it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cnmc_dir(shared_data: Path) -> Path:
    return shared_data / "cnmc_sample"


@pytest.fixture(scope="session")
def smear_dir(shared_data: Path) -> Path:
    return shared_data / "smear_frames"


@pytest.fixture(scope="session")
def synthetic_cells(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small C-NMC-style folder of synthetic cells (all/ and hem/, 40 each, 5 subjects each)."""
    from leukedge.synthetic import write_cell_dataset

    return write_cell_dataset(tmp_path_factory.mktemp("syncells"), per_class=40, subjects_per_class=5, seed=7, size=225)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
