"""The slide summary as text: for ``leukedge report`` and for the end of ``leukedge screen``."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from leukedge.tally import describe_fraction, format_band


def format_summary(s: Dict[str, Any], *, title: str = "Slide summary") -> str:
    """A few lines a person can read at the microscope."""
    band = s["indeterminate_band"]
    model = f" (model {s['model']})" if s.get("model") else ""
    lines = [
        f"{title}{model}",
        (
            f"  frames:            {s['frames']}"
            if s.get("counting") == "unique cells"
            else f"  fields (frames):   {s['frames']}"
        )
        + (f", {s['empty_frames']} without cells" if s["empty_frames"] else ""),
        _cells_line(s),
        f"  ALL:               {describe_fraction(s)}",
        f"  indeterminate:     {s['indeterminate']} cells with p_ALL in {format_band(band)};"
        f" outside it: {describe_fraction(s, 'determinate_')}",
        f"  adequacy:          {s['verdict']}",
    ]
    if s.get("counting") == "unique cells":
        lines.insert(2, _tracking_line(s))
    return "\n".join(lines)


def _cells_line(s: Dict[str, Any]) -> str:
    more = f" ({s['unclassified']} more found but not classified)" if s["unclassified"] else ""
    if s.get("counting") == "unique cells":
        return f"  unique cells:      {s['cells']} (each cell counted once){more}"
    return f"  cells classified:  {s['cells']}{more}"


def _tracking_line(s: Dict[str, Any]) -> str:
    """Fields visited, cells per field, looks per cell, frames skipped and why."""
    fields = s.get("fields_visited", s.get("fields"))
    parts = [f"fields visited {fields if fields is not None else 'n/a'}"]
    if s.get("cells_per_field") is not None:
        parts.append(f"{s['cells_per_field']} cells per field")
    if s.get("looks_per_cell") is not None:
        parts.append(f"{s['looks_per_cell']} good looks per cell")
    skipped = s.get("frames_skipped", s.get("skipped")) or {}
    shown = ", ".join(f"{v} {k}" for k, v in sorted(skipped.items()) if v)
    parts.append(f"frames skipped: {shown or 'none'}")
    return "  tracking:          " + "; ".join(parts)


def screen_summary(sinks: Any, *, results: Optional[str] = None) -> str:
    """The end-of-run summary of ``screen``, from the sinks ``build_sinks`` made.

    Counts come from the ``SummarySink`` in the set; then one line per
    problem a sink met (MQTT frames dropped or undelivered, live-view clients
    that lagged, failing sinks), and the command that makes the HTML report.
    """
    from leukedge.sinks.summary import SummarySink

    found = sinks.find(SummarySink) if hasattr(sinks, "find") else None
    if found is None:
        return "No slide summary: these sinks hold no SummarySink (make them with leukedge.sinks.build_sinks)."
    assert isinstance(found, SummarySink)
    s = found.running.to_dict()
    lines = [format_summary(s)]
    lines += _sink_problems(sinks.stats())
    if results:
        lines.append(f"  report:            leukedge report {results} --out {_html_name(results)}")
    return "\n".join(lines)


def _sink_problems(stats: Dict[str, Any]) -> List[str]:
    out: List[str] = []
    for name, st in stats.items():
        if name == "errors":
            out += [f"  sink {k} failed {v} time(s) (see the log)" for k, v in st.items()]
            continue
        if not isinstance(st, dict):
            continue
        if st.get("dropped"):
            out.append(f"  {name}: {st['dropped']} message(s) dropped")
        if name.startswith("mqtt") and (st.get("buffered") or st.get("unacked")):
            out.append(f"  {name}: {st['buffered'] + st['unacked']} frame(s) not confirmed by {st['broker']}")
        crops = st.get("crops")
        if isinstance(crops, dict) and crops.get("skipped"):
            out.append(f"  crops: {crops['skipped']} flagged cell(s) not saved (limit or no crop)")
    return list(dict.fromkeys(out))


def _html_name(results: str) -> str:
    stem = results.rsplit(".", 1)[0] if "." in results.rsplit("/", 1)[-1] else results
    return stem + "-report.html"
