"""``leukedge screen``: screen a camera, stream, video or image folder in real time."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import click

from leukedge.device.runtime_options import runtime_options
from leukedge.device.tracking_options import tracking_options
from leukedge.errors import InvalidInputError, OutputError
from leukedge.sinks.options import sink_options


@click.command()
@click.argument("source_arg", metavar="[SOURCE]", required=False)
@click.option(
    "--model",
    default="reference",
    show_default=True,
    help="Model bundle folder ('reference': the packaged model; a .h5 with --backend keras).",
)
@click.option(
    "--source",
    help="What to screen (or give it as SOURCE): synthetic://, picamera2://0, csi://0, v4l2:///dev/video0, rtsp://…, a video file, an image folder or glob.",
)
@sink_options
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after screening this many frames.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after this many seconds.")
@runtime_options
@click.option(
    "--preprocess",
    type=click.Choice(("auto", "cuda", "cpu")),
    default="auto",
    show_default=True,
    help="Where the LoG preprocessing runs; auto = CUDA when usable.",
)
@click.option("--workers", type=click.IntRange(min=1, max=32), help="Segmentation threads (default: by CPU count).")
@click.option("--max-batch", type=click.IntRange(min=1, max=1024), help="Largest batch of cells per inference call.")
@click.option(
    "--all-frames",
    is_flag=True,
    help="Screen every frame of a live source (lag grows if it is too fast) instead of only the newest.",
)
@tracking_options
@click.option("--quiet", "-q", is_flag=True, help="No live status line, only the summary.")
def screen(
    source_arg: Optional[str],
    model: str,
    source: Optional[str],
    max_frames: Optional[int],
    duration: Optional[float],
    backend: str,
    precision: str,
    preprocess: str,
    workers: Optional[int],
    max_batch: Optional[int],
    all_frames: bool,
    quiet: bool,
    tracking: str,
    still_shift: float,
    min_response: float,
    focus_ratio: float,
    min_focus: float,
    max_clipped: float,
    min_looks: int,
    max_looks: int,
    **sink_kw: Any,
) -> None:
    """Screen every white cell a source shows, live (SOURCE or --source).

    Prints a status line (fps, cells/s, latency p50/p99, dropped frames, ALL
    count) and writes one JSON line per cell to --out, with a frame-level line
    for each frame without cells.  With tracking (the default for cameras,
    videos and synthetic:// slides) each physical cell is counted once: it
    gets a cell_id, and one "final" line when it leaves the view.  Ctrl-C or SIGTERM stops capturing, finishes
    the frames in flight and flushes the outputs.
    """
    from leukedge.device.runtimes import resolve_model
    from leukedge.device.screener import Screener
    from leukedge.device.session import run_session
    from leukedge.device.status import StatusPrinter
    from leukedge.device.tracking_options import tracking_settings
    from leukedge.sinks.options import build_sinks

    if source and source_arg and source != source_arg:
        raise InvalidInputError(f"two sources given: {source_arg!r} and --source {source!r}", hint="give one")
    source = source or source_arg
    if not source:
        raise InvalidInputError(
            "no source given", hint="leukedge screen --source synthetic:// (or csi://0, v4l2:///dev/video0, a folder …)"
        )
    ref = resolve_model(None if model == "reference" else model)
    sinks = build_sinks(ref.identity, ref.manifest, **sink_kw)
    screener = Screener(
        ref,
        source,
        backend=backend,
        precision=precision,
        preprocess=preprocess,
        sinks=[sinks],
        latest_frame=False if all_frames else None,
        max_frames=max_frames,
        duration=duration,
        workers=workers,
        max_batch=max_batch,
        tracking=tracking_settings(
            tracking=tracking,
            still_shift=still_shift,
            min_response=min_response,
            focus_ratio=focus_ratio,
            min_focus=min_focus,
            max_clipped=max_clipped,
            min_looks=min_looks,
            max_looks=max_looks,
        ),
    )
    screener.open()  # load the model and open the source now, so what is printed is what runs
    for key, value in {**screener.describe(), **describe_outputs(sinks)}.items():
        click.echo(f"{key:>10}: {value}", err=True)
    printer = StatusPrinter()
    summary = run_session(screener, on_status=None if quiet else printer)
    printer.finish(summary.stats)
    click.echo(describe_summary(summary, tracking=screener.tracking_stats()))
    slide = slide_summary(sinks, sink_kw.get("outs") or ())
    if slide:
        click.echo(slide)
    raise_if_outputs_failed(summary.sinks)


def raise_if_outputs_failed(stats: Any) -> None:
    """After the summary: a results file that could not be written in full (full disk, ...) is an error."""
    failed = [(name, st) for name, st in _outputs(stats) if st.get("error")]
    if failed:
        shown = "; ".join(
            f"{st['path']}: {st['error']} ({st.get('lost_frames', 0)} frame(s) not written)" for _name, st in failed
        )
        raise OutputError(
            f"results could not be written in full: {shown}",
            hint="free space on that disk (or write --out elsewhere) and screen again",
        )


def describe_outputs(sinks: Any) -> Dict[str, str]:
    """The live view's address (a port of 0 is resolved) and whether the MQTT broker accepted us."""
    from leukedge.liveview import LiveViewSink
    from leukedge.sinks.mqtt import MqttSink

    out: Dict[str, str] = {}
    view = sinks.find(LiveViewSink)
    if view is not None:
        out["live view"] = view.url + ("  (open it with ?token=<your token>)" if view.token else "")
    mqtt = sinks.find(MqttSink)
    if mqtt is not None:
        mqtt.wait_connected(3.0)  # the broker's answer takes one round trip; a dead one is reported at once
        out["mqtt"] = mqtt.describe()
    return out


def slide_summary(sinks: Any, outs: Any) -> Optional[str]:
    """The results engineer's slide summary (counts with intervals, adequacy), where this install has it."""
    try:
        from leukedge.report import screen_summary
    except ImportError:
        return None
    return str(screen_summary(sinks, results=str(outs[0]) if outs else None))


def describe_summary(summary: Any, *, tracking: Optional[Dict[str, Any]] = None) -> str:
    """The closing lines: what was screened, what was found, where it went (``tracking``: the
    tracker's stats, when it ran)."""
    s = summary.stats
    share = f" ({100.0 * s.n_all / s.cells:.1f}% of cells)" if s.cells else ""
    lines = [
        f"Screened {s.frames} frame(s) in {s.elapsed_s:.1f} s"
        + (f", {s.dropped} stale frame(s) dropped" if s.dropped else "")
        + f": {s.cells} cell(s), {s.n_all} labelled ALL{share}.",
        f"  {s.mean_fps:.1f} frames/s, {s.mean_cells_per_s:.1f} cells/s; latency p50 "
        f"{s.latency_p50_ms if s.latency_p50_ms is not None else '–'} ms, p99 "
        f"{s.latency_p99_ms if s.latency_p99_ms is not None else '–'} ms",
    ]
    if tracking:
        skipped = ", ".join(f"{v} {k}" for k, v in tracking["skipped"].items() if v) or "none"
        lines.append(
            f"  Tracking: {tracking['unique_cells']} unique cell(s) (the cells above are per frame); "
            f"{tracking['fields']} field(s) visited; frames skipped: {skipped}."
        )
    if summary.stopped_by:
        lines.append(f"  Stopped by {summary.stopped_by}; frames in flight were finished and outputs flushed.")
    for name, st in _outputs(summary.sinks):
        lines.append(f"  {name}: {st['path']} ({st.get('cells', 0)} cells, {st.get('frames', 0)} frames)")
    if summary.skipped:
        lines.append(f"  {len(summary.skipped)} file(s) skipped as unreadable, e.g. {summary.skipped[0][1]}")
    return "\n".join(lines)


def _outputs(stats: Any, name: str = "") -> List[Tuple[str, Dict[str, Any]]]:
    """(sink name, stats) of every sink that wrote a file, from nested SinkSet stats."""
    if not isinstance(stats, dict):
        return []
    if stats.get("path"):
        return [(name, stats)]
    found: List[Tuple[str, Dict[str, Any]]] = []
    for key, value in stats.items():
        found.extend(_outputs(value, key))
    return found
