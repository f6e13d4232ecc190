"""Training checkpoints next to the output model, so an interrupted run resumes.

``<out stem>.ckpt/`` holds ``epoch-<n>.keras`` (model and optimizer state
after the last finished epoch), ``best.weights.h5`` (weights of the best
validation epoch) and ``state.json`` (epoch counter, early-stopping state,
history, the model file's name and a fingerprint of the data, split and
settings).  Files are written under temporary names and moved into place,
state last, so an interruption during a save leaves the previous checkpoint
whole.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leukedge.errors import InvalidInputError


@dataclass
class TrainState:
    epoch: int = 0  # epochs finished
    best_epoch: int = 0  # 1-based; 0 = none yet
    best_monitor: float = float("inf")
    wait: int = 0  # epochs since the best one
    history: dict[str, list[float]] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    model_file: str = ""  # epoch-<n>.keras in the checkpoint folder


def checkpoint_dir(out: Path) -> Path:
    return out.with_name(out.stem + ".ckpt")


class Checkpoints:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.state_path = directory / "state.json"
        self.best_path = directory / "best.weights.h5"

    def load_state(self, fingerprint: dict[str, Any]) -> TrainState | None:
        """The saved state if it belongs to this run; refuses a checkpoint of another run."""
        if not self.state_path.is_file():
            return None
        try:
            state = TrainState(**json.loads(self.state_path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as exc:
            raise InvalidInputError(
                f"{self.state_path}: checkpoint state is unreadable ({exc})",
                hint="run with --restart to discard the checkpoint",
            ) from exc
        differ = sorted(
            k for k in set(fingerprint) | set(state.fingerprint) if fingerprint.get(k) != state.fingerprint.get(k)
        )
        if differ:
            raise InvalidInputError(
                f"{self.dir}: holds a checkpoint of a different run (differs in: {', '.join(differ)})",
                hint="run with --restart to discard it, or choose another --out",
            )
        if not state.model_file or not (self.dir / state.model_file).is_file():
            return None
        return state

    def model_path(self, state: TrainState) -> Path:
        return self.dir / state.model_file

    def save(self, model: Any, state: TrainState, *, best: bool) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if best:
            tmp = self.dir / "best.tmp.weights.h5"
            model.save_weights(tmp)
            os.replace(tmp, self.best_path)
        state.model_file = f"epoch-{state.epoch:04d}.keras"
        tmp_model = self.dir / "epoch.tmp.keras"
        model.save(tmp_model)
        os.replace(tmp_model, self.dir / state.model_file)
        tmp_state = self.dir / "state.tmp.json"
        tmp_state.write_text(json.dumps(asdict(state), indent=1), encoding="utf-8")
        os.replace(tmp_state, self.state_path)
        for old in self.dir.glob("epoch-*.keras"):
            if old.name != state.model_file:
                old.unlink()

    def clear(self) -> None:
        if self.dir.is_dir():
            shutil.rmtree(self.dir)
