"""The acceptance gate: is the converted model the trained model, on real labelled cells?

Two checks.  FP32 parity: ONNX FP32 must reproduce Keras to ``max |Δp| ≤
1e-4`` (a conversion bug otherwise).  INT8 acceptance: against FP32 on the
same labelled cells, the share of cells whose label flips, and the changes in
sensitivity and specificity (percentage points) must stay within bounds; the
change in AUC is reported beside them.  The functions here are pure: scores
in, verdict out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from leukedge.verdict import GateVerdict, verdict_of


@dataclass(frozen=True)
class GateThresholds:
    max_fp32_delta: float = 1e-4  # Keras vs ONNX FP32, max |Δp|
    max_flip_rate: float = 0.01  # INT8 vs FP32, share of cells whose label changes
    max_sens_delta: float = 1.0  # |Δ sensitivity|, percentage points
    max_spec_delta: float = 1.0  # |Δ specificity|, percentage points
    max_auc_drop: Optional[float] = None  # reported always; gated only when set

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def auc(y: np.ndarray, p: np.ndarray) -> Optional[float]:
    """Area under the ROC curve (Mann–Whitney, ties counted half); None with one class only."""
    y = np.asarray(y).astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), dtype=np.float64)
    sorted_p = np.asarray(p)[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_p, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def rates(y: np.ndarray, p: np.ndarray, threshold: float) -> Dict[str, Optional[float]]:
    """Sensitivity and specificity in percent at ``p >= threshold``."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(p) >= threshold
    sens = 100.0 * float((pred & y).sum()) / y.sum() if y.any() else None
    spec = 100.0 * float((~pred & ~y).sum()) / (~y).sum() if (~y).any() else None
    return {"sensitivity": sens, "specificity": spec}


def fp32_parity(p_keras: np.ndarray, p_onnx: np.ndarray, thresholds: GateThresholds) -> GateVerdict:
    delta = np.abs(np.asarray(p_keras, np.float64) - np.asarray(p_onnx, np.float64))
    worst = float(delta.max()) if len(delta) else 0.0
    passed = bool(worst <= thresholds.max_fp32_delta)
    figures = {
        "cells": len(delta),
        "max_abs_delta_p": worst,
        "mean_abs_delta_p": float(delta.mean()) if len(delta) else 0.0,
        "limit": thresholds.max_fp32_delta,
    }
    reasons = () if passed else (f"max |Δp| {worst:.2e} > {thresholds.max_fp32_delta:.0e}",)
    return GateVerdict("fp32", passed, reasons, figures)


def compare(y: np.ndarray, p_ref: np.ndarray, p_new: np.ndarray, threshold: float) -> Dict[str, Any]:
    """INT8 (``p_new``) against FP32 (``p_ref``) on labelled cells ``y`` (1 = ALL)."""
    ref, new = rates(y, p_ref, threshold), rates(y, p_new, threshold)
    a_ref, a_new = auc(y, p_ref), auc(y, p_new)
    flips = int(((np.asarray(p_ref) >= threshold) != (np.asarray(p_new) >= threshold)).sum())
    delta = np.abs(np.asarray(p_ref, np.float64) - np.asarray(p_new, np.float64))
    return {
        "cells": len(y),
        "positives": int(np.asarray(y).sum()),
        "flips": flips,
        "flip_rate": flips / len(y) if len(y) else 0.0,
        "sensitivity_fp32": ref["sensitivity"],
        "sensitivity_int8": new["sensitivity"],
        "sensitivity_delta": _diff(new["sensitivity"], ref["sensitivity"]),
        "specificity_fp32": ref["specificity"],
        "specificity_int8": new["specificity"],
        "specificity_delta": _diff(new["specificity"], ref["specificity"]),
        "auc_fp32": a_ref,
        "auc_int8": a_new,
        "auc_delta": _diff(a_new, a_ref),
        "max_abs_delta_p": float(delta.max()) if len(delta) else 0.0,
        "mean_abs_delta_p": float(delta.mean()) if len(delta) else 0.0,
    }


def int8_verdict(metrics: Dict[str, Any], thresholds: GateThresholds, threshold: float, **figures: Any) -> GateVerdict:
    """The INT8 gate's verdict on ``metrics`` (from :func:`compare`): passed when :func:`judge` finds no reason."""
    reasons = judge(metrics, thresholds)
    stored = {"threshold": threshold, "thresholds": thresholds.to_dict(), "metrics": metrics, "excluded_nodes": []}
    return GateVerdict("int8", not reasons, tuple(reasons), {**stored, **figures})


def judge(metrics: Dict[str, Any], thresholds: GateThresholds) -> List[str]:
    """Reasons the INT8 model fails the gate; an empty list means it passes."""
    why = []
    if metrics["flip_rate"] > thresholds.max_flip_rate:
        why.append(f"label flips {100 * metrics['flip_rate']:.2f}% > {100 * thresholds.max_flip_rate:.2f}%")
    for key, limit in (("sensitivity", thresholds.max_sens_delta), ("specificity", thresholds.max_spec_delta)):
        d = metrics[f"{key}_delta"]
        if d is not None and abs(d) > limit:
            why.append(f"{key} changed by {d:+.2f} points (limit ±{limit:g})")
    drop = metrics["auc_delta"]
    if thresholds.max_auc_drop is not None and drop is not None and -drop > thresholds.max_auc_drop:
        why.append(f"AUC dropped by {-drop:.4f} (limit {thresholds.max_auc_drop:g})")
    return why


def _diff(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else a - b


def _fmt(v: Any, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def _int8_rows(m: Dict[str, Any], t: Dict[str, Any]) -> List[Tuple[str, ...]]:
    """The INT8 table's rows: header, then each metric for FP32, INT8, their difference and the limit."""
    return [
        ("metric", "FP32", "INT8", "Δ", "limit"),
        (
            "label flips",
            "",
            f"{m['flips']}/{m['cells']}",
            f"{100 * m['flip_rate']:.2f}%",
            f"≤ {100 * t['max_flip_rate']:.2f}%",
        ),
        (
            "sensitivity %",
            _fmt(m["sensitivity_fp32"], ".2f"),
            _fmt(m["sensitivity_int8"], ".2f"),
            _fmt(m["sensitivity_delta"], "+.2f"),
            f"± {t['max_sens_delta']:g}",
        ),
        (
            "specificity %",
            _fmt(m["specificity_fp32"], ".2f"),
            _fmt(m["specificity_int8"], ".2f"),
            _fmt(m["specificity_delta"], "+.2f"),
            f"± {t['max_spec_delta']:g}",
        ),
        (
            "AUC",
            _fmt(m["auc_fp32"], ".4f"),
            _fmt(m["auc_int8"], ".4f"),
            _fmt(m["auc_delta"], "+.4f"),
            "report" if t.get("max_auc_drop") is None else f"≥ -{t['max_auc_drop']:g}",
        ),
        ("max |Δp|", "", "", f"{m['max_abs_delta_p']:.4f}", ""),
    ]


def gate_table(parity: Dict[str, Any]) -> str:
    """The gate as a plain-text table (what ``leukedge convert`` prints and the docs quote)."""
    lines = []
    fp = verdict_of(parity, "fp32")
    if fp.passed is not None:
        verdict = "PASS" if fp.passed else "FAIL"
        lines.append(
            f"FP32 parity (Keras vs ONNX, {fp['cells']} cells): max |Δp| = {fp['max_abs_delta_p']:.2e} "
            f"(limit {fp['limit']:.0e})  {verdict}"
        )
    if not isinstance(parity, dict) or "int8" not in parity:
        return "\n".join(lines)
    q = verdict_of(parity, "int8")
    if q.passed is None:
        lines.append(f"INT8 gate: not run ({'; '.join(q.reasons) or 'no --validate data'})")
        return "\n".join(lines)
    m, t = q["metrics"], q["thresholds"]
    rows = _int8_rows(m, t)
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines.append(f"INT8 gate ({m['cells']} labelled cells, {m['positives']} ALL, threshold {q['threshold']:g}):")
    for i, r in enumerate(rows):
        lines.append("  " + "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    excluded = q.figures.get("excluded_nodes") or []
    lines.append(f"  layers kept in float: {', '.join(excluded) if excluded else 'none'}")
    verdict = "PASS" if q.passed else "FAIL: " + "; ".join(q.reasons)
    lines.append(f"  verdict: {verdict}")
    collapsed = _one_label_everywhere(m)
    if collapsed:
        lines.append(
            f"  note: the FP32 model labels every validation cell {collapsed}; the gate only compares INT8"
            " with FP32, so check the model itself with 'leukedge evaluate'"
        )
    return "\n".join(lines)


def _one_label_everywhere(m: Dict[str, Any]) -> Optional[str]:
    """'ALL' or 'normal' when the FP32 model gave every validation cell that label (a collapsed model)."""
    sens, spec = m.get("sensitivity_fp32"), m.get("specificity_fp32")
    if sens is None or spec is None:
        return None  # one class absent from the validation cells: nothing to say
    if spec == 0.0 and sens == 100.0:
        return "ALL"
    if sens == 0.0 and spec == 100.0:
        return "normal"
    return None
