"""The slide report as one self-contained HTML file: inline CSS, inline SVG charts, crops as data: URIs."""

from __future__ import annotations

import json
from html import escape
from typing import Any, Dict, List, Tuple

from leukedge.report.build import HIST_BINS, SlideReport
from leukedge.tally import describe_fraction, format_band, format_percent

MAX_FIELD_ROWS = 1000
MAX_PROBLEM_ROWS = 200

CSS = """
body{font:14px/1.45 system-ui,sans-serif;color:#1d232a;max-width:60rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.muted{color:#667}.verdict{padding:.5rem .8rem;border-radius:.3rem;background:#fbe9d0}
.verdict.ok{background:#dff2e3}.headline{font-size:1.3rem;margin:.6rem 0}
table{border-collapse:collapse}td,th{padding:.15rem .6rem;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.note{background:#fff6d6;padding:.3rem .6rem;margin:.3rem 0}
.gallery{display:flex;flex-wrap:wrap;gap:.5rem}.gallery figure{margin:0;width:110px;font-size:.75rem;text-align:center}
.gallery img{width:110px;height:110px;border:3px solid #d7263d;border-radius:.3rem}
.gallery figure.ind img{border-color:#f4a259;border-style:dashed}
pre{background:#f5f6f8;padding:.5rem;overflow:auto;max-height:20rem;font-size:.8rem}
.scroll{max-height:30rem;overflow:auto}footer{margin-top:2rem;font-size:.8rem}
"""


def render_html(rep: SlideReport) -> str:
    s = rep.summary
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>leukedge slide report – {escape(rep.results.path.name)}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Slide report</h1>",
        f"<div class='muted'>{escape(str(rep.results.path))} · generated {escape(rep.generated)} "
        f"by leukedge {escape(rep.version)}</div>",
        *[f"<div class='note'>{escape(n)}</div>" for n in rep.notes],
        (
            f"<div class='note'>{len(rep.results.problems.bad_lines)} malformed line(s) of the results file were "
            "skipped; they are listed under Problems.</div>"
            if rep.results.problems
            else ""
        ),
        _summary(s),
        _counts_table(s),
        "<h2>p<sub>ALL</sub> histogram</h2>",
        histogram_svg(rep.histogram, rep.band, rep.threshold),
        _gallery(rep),
        _fields(rep),
        _audit(rep),
        _problems(rep),
        "<footer class='muted'>A screening aid, not a diagnosis: the counts and flagged cells need review "
        "by a qualified person before any clinical use.</footer></body></html>",
    ]
    return "\n".join(parts)


def _summary(s: Dict[str, Any]) -> str:
    cls = "verdict ok" if s["adequate"] else "verdict"
    return (
        "<h2>Summary</h2>"
        f"<div class='headline' id='headline'>{escape(describe_fraction(s))}</div>"
        f"<div class='{cls}' id='verdict'>{escape(s['verdict'])}</div>"
    )


def _counts_table(s: Dict[str, Any]) -> str:
    band = s["indeterminate_band"]
    det = describe_fraction(s, "determinate_")
    rows = [
        ("fields (frames)", s["frames"], "fields"),
        ("fields without cells", s["empty_frames"], "empty-fields"),
        ("cells classified", s["cells"], "cells"),
        ("labelled ALL", s["all"], "all"),
        ("labelled not ALL", s["other"], "other"),
        ("ALL fraction", format_percent(s["all_fraction"], 2), "all-fraction"),
        ("95% Wilson interval", _ci(s["all_ci95"]), "all-ci"),
        (f"indeterminate (p_ALL in {format_band(band)})", s["indeterminate"], "indeterminate"),
        ("outside the band", det, "determinate"),
        ("cells found but not classified", s["unclassified"], "unclassified"),
        ("adequacy threshold (cells)", s["min_cells"], "min-cells"),
    ]
    if s.get("counting") == "unique cells":  # tracked: counts are of physical cells (docs/tracking.md)
        rows[0] = ("frames", s["frames"], "fields")
        rows[2] = ("unique cells (each counted once)", s["cells"], "cells")
        skipped = ", ".join(f"{v} {k}" for k, v in (s.get("frames_skipped") or {}).items() if v) or "none"
        rows += [
            ("fields visited", _or_na(s.get("fields_visited")), "fields-visited"),
            ("cells per field", _or_na(s.get("cells_per_field")), "cells-per-field"),
            ("good looks per cell", _or_na(s.get("looks_per_cell")), "looks-per-cell"),
            ("frames skipped, and why", skipped, "frames-skipped"),
        ]
    body = "".join(f"<tr><th>{escape(k)}</th><td class='n' id='{i}'>{escape(str(v))}</td></tr>" for k, v, i in rows)
    return f"<table class='counts'>{body}</table>"


def _or_na(v: Any) -> Any:
    return "n/a" if v is None else v


def _ci(ci: Any) -> str:
    return "n/a" if ci is None else f"{format_percent(ci[0], 2)} – {format_percent(ci[1], 2)}"


def histogram_svg(hist: List[Tuple[int, int]], band: Tuple[float, float], threshold: Any) -> str:
    """Stacked bars (ALL-labelled, other) over p_ALL in [0, 1], with the band shaded and the threshold marked."""
    w, h, pad = 640, 220, 30
    top = max([a + b for a, b in hist] + [1])
    bw = (w - 2 * pad) / HIST_BINS
    x = lambda p: pad + p * (w - 2 * pad)  # noqa: E731
    y = lambda n: h - pad - n * (h - 2 * pad) / top  # noqa: E731
    out = [
        f"<svg id='histogram' viewBox='0 0 {w} {h}' width='{w}' height='{h}' role='img' aria-label='p_ALL histogram'>"
    ]
    out.append(
        f"<rect x='{x(band[0]):.1f}' y='{pad}' width='{x(band[1]) - x(band[0]):.1f}' height='{h - 2 * pad}' "
        "fill='#f4a259' opacity='.18'><title>indeterminate band</title></rect>"
    )
    for i, (a, b) in enumerate(hist):
        x0 = pad + i * bw + 1
        for n, base, colour, what in ((b, 0, "#1b98e0", "not ALL"), (a, b, "#d7263d", "ALL")):
            if n:
                out.append(
                    f"<rect class='bar' data-bin='{i}' data-label='{what}' data-n='{n}' x='{x0:.1f}' "
                    f"y='{y(base + n):.1f}' width='{bw - 2:.1f}' height='{y(base) - y(base + n):.1f}' "
                    f"fill='{colour}'><title>{what}: {n} cells with p in [{i / HIST_BINS:.2f}, "
                    f"{(i + 1) / HIST_BINS:.2f})</title></rect>"
                )
    if threshold is not None:
        out.append(
            f"<line x1='{x(threshold):.1f}' x2='{x(threshold):.1f}' y1='{pad - 8}' y2='{h - pad}' "
            "stroke='#333' stroke-dasharray='4 3'><title>decision threshold</title></line>"
        )
    out.append(f"<line x1='{pad}' x2='{w - pad}' y1='{h - pad}' y2='{h - pad}' stroke='#333'/>")
    for p in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(f"<text x='{x(p):.1f}' y='{h - pad + 16}' font-size='11' text-anchor='middle'>{p}</text>")
    out.append(f"<text x='{pad}' y='{pad - 12}' font-size='11'>max {top} cells per bin</text>")
    out.append(
        f"<text x='{w - pad}' y='{pad - 12}' font-size='11' text-anchor='end'>"
        "<tspan fill='#d7263d'>■ ALL</tspan> <tspan fill='#1b98e0'>■ not ALL</tspan> "
        "<tspan fill='#f4a259'>■ band</tspan></text></svg>"
    )
    return "".join(out)


def _gallery(rep: SlideReport) -> str:
    head = f"<h2>Flagged cells ({rep.flagged_total}: labelled ALL or indeterminate)</h2>"
    if not rep.flagged_total:
        return head + "<p>No cell was flagged.</p>"
    if not rep.crops_saved:
        return head + (
            "<p class='muted'>The results file names no crops, so there is nothing to show here. "
            "Screen with <code>--save-crops</code> to keep the flagged cells' images beside the results.</p>"
        )
    note = f"<p class='muted'>Highest p_ALL first; {len(rep.flagged)} shown of {rep.crops_saved} with a saved crop"
    note += f"; {rep.crops_missing} crop file(s) missing or unreadable.</p>" if rep.crops_missing else ".</p>"
    out = [head, note]
    for title, ind in (("Indeterminate: review these first", True), ("Labelled ALL, outside the band", False)):
        figs = [_figure(f) for f in rep.flagged if f.indeterminate == ind]
        if figs:
            out.append(f"<h3>{title} ({len(figs)} shown)</h3><div class='gallery'>{''.join(figs)}</div>")
    return "".join(out)


def _figure(f: Any) -> str:
    cls = "ind" if f.indeterminate else "all"
    cap = f"p {f.p_all:.3f} · {f.label} · field {f.frame} cell {f.cell}"
    return (
        f"<figure class='{cls}' data-frame='{f.frame}' data-cell='{f.cell}'><img alt='{escape(cap)}' "
        f"src='{f.image}'><figcaption>{escape(cap)}</figcaption></figure>"
    )


def _fields(rep: SlideReport) -> str:
    rows = "".join(
        f"<tr><td class='n'>{r.frame}</td><td>{escape(r.source)}</td><td class='n'>{r.cells}</td>"
        f"<td class='n'>{r.all}</td><td class='n'>{r.indeterminate}</td><td class='n'>{r.unclassified}</td></tr>"
        for r in rep.fields[:MAX_FIELD_ROWS]
    )
    more = (
        f"<p class='muted'>{len(rep.fields) - MAX_FIELD_ROWS} more fields are in the results file.</p>"
        if len(rep.fields) > MAX_FIELD_ROWS
        else ""
    )
    return (
        f"<h2>Per-field counts ({len(rep.fields)} fields)</h2><div class='scroll'><table id='fields'>"
        "<tr><th>field</th><th>source</th><th>cells</th><th>ALL</th><th>indeterminate</th><th>not classified</th></tr>"
        f"{rows}</table></div>{more}"
    )


def _audit(rep: SlideReport) -> str:
    res = rep.results
    rows = [
        ("results file", str(res.path)),
        ("results SHA-256", res.sha256),
        ("records read", str(len(res.records))),
        ("model(s) named in the results", ", ".join(f"{k} ({v} records)" for k, v in sorted(rep.models.items()))),
    ]
    b = rep.bundle
    if b is not None:
        m = b.manifest
        pre = m.preprocessing
        rows += [
            ("bundle", str(b.root)),
            ("model id (SHA-256 of the bundle's files and label-deciding manifest fields)", b.model_hash),
            ("model", f"{m.name} ({m.architecture}), classes {', '.join(m.classes)}"),
            ("input", f"{pre.input_height}×{pre.input_width} {pre.channel_order} {pre.layout}"),
            ("decision", f"p_ALL ≥ {m.decision.threshold} is ALL (policy: {m.decision.policy})"),
            ("indeterminate band", f"[{m.decision.indeterminate[0]}, {m.decision.indeterminate[1]})"),
            ("files", ", ".join(f"{k}: {f.path} {f.sha256[:12]}…" for k, f in sorted(m.files.items()))),
        ]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    extra = ""
    if b is not None:
        for title, d in (
            ("provenance", b.manifest.provenance),
            ("parity", b.manifest.parity),
            ("metrics", b.manifest.metrics),
        ):
            if d:
                text = json.dumps(d, indent=1, default=str)
                text = text if len(text) <= 6000 else text[:6000] + "\n…"
                extra += f"<h3>{title}</h3><pre>{escape(text)}</pre>"
    else:
        extra = "<p class='muted'>No model bundle was given (<code>--model BUNDLE</code>), so no manifest is shown.</p>"
    return f"<h2>Audit trail</h2><table id='audit'>{table}</table>{extra}"


def _problems(rep: SlideReport) -> str:
    bad = rep.results.problems.bad_lines
    if not bad:
        return "<h2>Problems</h2><p id='problems'>None: every line of the results file was read.</p>"
    items = "".join(f"<li>line {n}: {escape(why)}</li>" for n, why in bad[:MAX_PROBLEM_ROWS])
    more = f"<li>… and {len(bad) - MAX_PROBLEM_ROWS} more</li>" if len(bad) > MAX_PROBLEM_ROWS else ""
    return (
        f"<h2>Problems</h2><p>{len(bad)} malformed line(s) were skipped; all other lines were counted.</p>"
        f"<ul id='problems'>{items}{more}</ul>"
    )
