"""The evaluation report: ``evaluation.json`` and one self-contained ``report.html``.

The HTML embeds its PNG plots as data URIs, so the single file can be mailed
or archived.  Every number in it is also in the JSON.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from leukedge.trainer import metrics, plots
from leukedge.trainer.provenance import jsonable

LABELS = {
    "accuracy": "accuracy",
    "sensitivity": "sensitivity (ALL recall)",
    "specificity": "specificity",
    "balanced_accuracy": "balanced accuracy",
    "weighted_f1": "weighted F1",
    "roc_auc": "ROC-AUC",
}

CSS = """
body{font-family:system-ui,sans-serif;max-width:1050px;margin:24px auto;color:#222;padding:0 12px}
table{border-collapse:collapse;margin:8px 0 18px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.note{background:#fff8e1;padding:6px 10px}
img{max-width:100%;margin:4px}.small{font-size:85%;color:#555}
"""


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "—"
    return f"{v:.{digits}f}" if isinstance(v, float) else html.escape(str(v))


def _img(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _metric_rows(models: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    header = ["metric", *models]
    rows = []
    for key, label in LABELS.items():
        row: list[Any] = [label]
        for m in models.values():
            v = m["metrics"][key]
            lo, hi = v["ci95"]
            row.append(f"{_fmt(v['value'])} [{_fmt(lo)}, {_fmt(hi)}]")
        rows.append(row)
    extra = [
        ("AUC within equal-area bins", lambda m: m.get("area", {}).get("within_bin_auc", {}).get("auc")),
        ("Spearman(score, area)", lambda m: m.get("area", {}).get("spearman_score_area")),
        ("ECE", lambda m: m["calibration"]["ece"]),
    ]
    for label, get in extra:
        rows.append([label, *[_fmt(get(m)) for m in models.values()]])
    return header, rows


def render_html(doc: dict[str, Any], arrays: dict[str, Any]) -> str:
    cnn = doc["cnn"]
    models = {"CNN": cnn, **{f"{k} baseline": v for k, v in doc.get("baselines", {}).items()}}
    curves = {}
    for name, m in models.items():
        fpr, tpr, _ = metrics.roc_curve(arrays["y"], m["p_all"])
        curves[name] = (fpr, tpr, m["metrics"]["roc_auc"]["value"])
    figs = [
        _img(plots.training_curves(doc.get("history", {})), "training curves"),
        _img(plots.confusion_matrix(cnn["confusion"], title="CNN confusion matrix"), "confusion matrix"),
        _img(plots.roc(curves), "ROC"),
        _img(plots.reliability(cnn["calibration"]["bins"], cnn["calibration"]["ece"]), "reliability"),
        _img(plots.score_vs_area(cnn["p_all"], arrays["area"], arrays["y"]), "score vs area"),
    ]
    header, rows = _metric_rows(models)
    subj_rows = [
        [r["subject"], r["label"], r["cells"], r["mean_p_all"], r["called_all"], r["accuracy"]]
        for r in cnn["per_subject"]
    ]
    data = doc["data"]
    skipped = [[s["file"], s["reason"]] for s in data["skipped"]]
    model = doc["model"]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>leukedge evaluation</title><style>{CSS}</style></head><body>",
        "<h1>leukedge evaluation</h1>",
        f"<p>Model <code>{html.escape(model['path'])}</code> ({html.escape(model['id'])}, {html.escape(model['runtime'])}); "
        f"threshold {model['decision']['threshold']} ({html.escape(model['decision']['policy'])}).<br>"
        f"Data <code>{html.escape(data['folder'])}</code>: {data['evaluated']} cells evaluated of {data['found']} found; "
        f"{cnn['cells_all']} ALL cells from {len(cnn['subjects_all'])} subject(s), {cnn['cells_hem']} normal cells "
        f"from {len(cnn['subjects_hem'])} donor(s).</p>",
        *[f"<p class='note'>{html.escape(n)}</p>" for n in doc.get("notes", [])],
        "<h2>Figures (95% interval: bootstrap over subjects, stratified by class)</h2>",
        _table(header, rows),
        "<h2>Plots</h2>",
        *figs,
        "<h2>Per subject</h2>",
        _table(["subject", "label", "cells", "mean p(ALL)", "called ALL", "accuracy"], subj_rows),
        "<h2>Calibration bins</h2>",
        _table(
            ["p range", "cells", "mean p(ALL)", "fraction ALL"],
            [
                [f"{b['low']:.1f}–{b['high']:.1f}", b["n"], b["mean_p"], b["frac_all"]]
                for b in cnn["calibration"]["bins"]
            ],
        ),
        f"<h2>Skipped files ({len(skipped)})</h2>",
        _table(["file", "reason"], skipped) if skipped else "<p>none</p>",
        f"<h2>Near-duplicates removed ({len(data['duplicates_removed'])})</h2>",
        _table(
            ["file", "copy of", "bits", "reason"],
            [[d["file"], d["duplicate_of"], d["bits"], d["reason"]] for d in data["duplicates_removed"]],
        )
        if data["duplicates_removed"]
        else "<p>none</p>",
        "<p class='small'>Generated by leukedge evaluate. Every number is also in evaluation.json.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(folder: Path, doc: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Path]:
    """Write evaluation.json (with per-cell predictions) and report.html into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    cells = [
        {"file": f, "subject": str(s), "label": "all" if yy else "hem", "area": a, "p_all": p}
        for f, s, yy, a, p in zip(arrays["files"], arrays["subject"], arrays["y"], arrays["area"], doc["cnn"]["p_all"])
    ]
    for name, b in doc.get("baselines", {}).items():
        for row, p in zip(cells, b["p_all"]):
            row[f"p_all_{name}"] = p
    json_path = folder / "evaluation.json"
    html_path = folder / "report.html"
    html_path.write_text(render_html(doc, arrays), encoding="utf-8")
    body = {k: v for k, v in doc.items() if k not in ("cnn", "baselines")}
    body["cnn"] = {k: v for k, v in doc["cnn"].items() if k != "p_all"}
    if "baselines" in doc:
        body["baselines"] = {n: {k: v for k, v in b.items() if k != "p_all"} for n, b in doc["baselines"].items()}
    body["report"] = {"json": str(json_path), "html": str(html_path)}
    body["cells"] = cells
    json_path.write_text(json.dumps(jsonable(body), indent=1) + "\n", encoding="utf-8")
    return {"json": json_path, "html": html_path}
