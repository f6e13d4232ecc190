"""Report figures as PNG bytes (matplotlib, no display needed).

Each function takes plain values (lists, dicts, arrays) and returns PNG bytes,
so the HTML report can embed them and nothing here touches a model.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np


def _figure(w: float = 5.0, h: float = 3.6) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    return fig, fig.subplots()


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def training_curves(history: dict[str, list[float]]) -> bytes | None:
    """Loss and accuracy per epoch, training vs validation (the paper's Fig. 5)."""
    if not history or not history.get("loss"):
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=100, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(epochs, history[key], label="training (augmented, balanced)")
        val = [np.nan if v is None else v for v in history.get(f"val_{key}", [])]
        if val:
            ax.plot(epochs[: len(val)], val, label="validation" + (" (class-balanced)" if key == "loss" else ""))
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig)


def confusion_matrix(conf: dict[str, int], *, title: str = "") -> bytes:
    fig, ax = _figure(3.6, 3.2)
    m = np.array([[conf["tn"], conf["fp"]], [conf["fn"], conf["tp"]]])
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", color="black" if v < m.max() / 2 else "white", fontsize=14)
    ax.set_xticks([0, 1], ["normal", "ALL"])
    ax.set_yticks([0, 1], ["normal", "ALL"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    return _png(fig)


def roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> bytes:
    """ROC curves: name → (false-positive rate, true-positive rate, AUC)."""
    fig, ax = _figure(4.4, 4.0)
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})", alpha=0.85)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("ROC")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def reliability(bins: list[dict[str, Any]], ece: float) -> bytes:
    """Observed fraction of ALL cells against mean predicted p_all, per bin."""
    fig, ax = _figure(4.4, 4.0)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect calibration")
    if bins:
        x = [b["mean_p"] for b in bins]
        y = [b["frac_all"] for b in bins]
        sizes = [20 + 200 * b["n"] / max(bb["n"] for bb in bins) for b in bins]
        ax.plot(x, y, color="C0")
        ax.scatter(x, y, s=sizes, color="C0", label="bins (size ∝ cells)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean predicted p(ALL)")
    ax.set_ylabel("fraction ALL")
    ax.set_title(f"reliability (ECE {ece:.3f})")
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def score_vs_area(p: np.ndarray, area: np.ndarray, y: np.ndarray) -> bytes:
    """The model's p_all against cell area, by true class: how much is only size?"""
    fig, ax = _figure(4.8, 3.8)
    y = np.asarray(y, bool)
    ax.scatter(np.asarray(area)[~y], np.asarray(p)[~y], s=10, alpha=0.7, label="normal (hem)")
    ax.scatter(np.asarray(area)[y], np.asarray(p)[y], s=10, alpha=0.7, label="ALL")
    ax.set_xlabel("cell area (px on the 450-px canvas)")
    ax.set_ylabel("p(ALL)")
    ax.set_title("score against cell size")
    ax.legend(fontsize=8)
    return _png(fig)
