"""Fixtures of the device tests: tiny real bundles (one matching its manifest, one not) and real crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leukedge.bundle import Bundle
from tests.device.device_helpers import tiny_bundle


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="session")
def mismatched_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """Manifest says 128×128 inputs, the model takes 64×64."""
    return tiny_bundle(tmp_path_factory.mktemp("mismatch"), model_size=64, manifest_size=128)


@pytest.fixture(scope="session")
def real_crops(cnmc_dir: Path) -> np.ndarray:
    """48 real C-NMC cells (24 ALL, 24 normal) as the pipeline crops them: N×128×128×3 uint8."""
    from leukedge.images import read_image
    from leukedge.manifest import Preprocessing
    from leukedge.segment import segment

    files = sorted((cnmc_dir / "all").glob("*.png"))[:24] + sorted((cnmc_dir / "hem").glob("*.png"))[:24]
    crops = [segment(read_image(f), Preprocessing())[0].crop for f in files]
    return np.stack(crops)
