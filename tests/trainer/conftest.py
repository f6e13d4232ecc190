"""Fixtures for the trainer tests: tiny real trainings on synthetic cells.

The models are the real VGG13 at width 1/16 (channels 4…32) with small dense
layers, trained for a few epochs on 225-pixel synthetic cells: seconds, not
minutes, on a 2-core CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest.importorskip("tensorflow")


def _tiny_options(*, epochs: int = 6, seed: int = 0, batch_norm: bool = False, patience: int = 8):
    from leukedge.trainer.model import ModelConfig
    from leukedge.trainer.training import TrainOptions

    return TrainOptions(
        epochs=epochs,
        batch_size=16,
        learning_rate=2e-3,
        patience=patience,
        seed=seed,
        model=ModelConfig(width=1 / 16, dense=(32, 32), dropout=0.0, batch_norm=batch_norm),
    )


def _tiny_split(val_fraction: float = 0.4, test_fraction: float = 0.2):
    from leukedge.trainer.training import SplitOptions

    return SplitOptions(val_fraction=val_fraction, test_fraction=test_fraction)


@pytest.fixture(scope="session")
def tiny_options():
    """Factory of TrainOptions for a width-1/16 VGG13 with 32-unit dense layers."""
    return _tiny_options


@pytest.fixture(scope="session")
def tiny_split():
    """Factory of SplitOptions (default: 40% of each class's subjects validate, 20% are held out)."""
    return _tiny_split


@pytest.fixture(scope="session")
def cells6(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic two-class set: 48 cells per class from 6 subjects each, 160 px."""
    from leukedge.synthetic import write_cell_dataset

    return write_cell_dataset(tmp_path_factory.mktemp("cells6"), per_class=48, subjects_per_class=6, seed=11, size=160)


@pytest.fixture(scope="session")
def trained(cells6: Path, tmp_path_factory: pytest.TempPathFactory):
    """A tiny VGG13 trained on ``cells6`` (subjects: 3 per class train, 2 validate, 1 held out)."""
    from leukedge.trainer.training import train

    out = tmp_path_factory.mktemp("trained") / "model.h5"
    return train(
        cells6, out, options=_tiny_options(epochs=10), split=_tiny_split(val_fraction=0.34, test_fraction=0.17)
    )
