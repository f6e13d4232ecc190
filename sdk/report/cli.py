"""``leukedge report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from leukedge.tally import DEFAULT_MIN_CELLS


@click.command()
@click.argument("results", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="HTML file [default: RESULTS-report.html]")
@click.option(
    "--min-cells",
    type=click.IntRange(min=1),
    default=DEFAULT_MIN_CELLS,
    show_default=True,
    help="Cells needed for an adequate count.",
)
@click.option("--model", "model", metavar="BUNDLE", help="The bundle the results came from (band and audit trail).")
@click.option(
    "--gallery",
    type=click.IntRange(min=0),
    default=60,
    show_default=True,
    help="Flagged cells to show, of each kind (indeterminate; ALL).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of text.")
def report(
    results: Path, out: Optional[Path], min_cells: int, model: Optional[str], gallery: int, as_json: bool
) -> None:
    """Make a slide report (one self-contained HTML file) from a results file (.jsonl, .csv, .parquet).

    Shows the cells counted, the ALL fraction with its Wilson 95% interval, an
    adequacy verdict, the indeterminate band, per-field counts, a p_ALL
    histogram, the flagged cells (if crops were saved) and the audit trail.
    Malformed lines are skipped, listed with their line numbers, and the rest
    is still counted.
    """
    from leukedge.report import format_summary, write_report

    dest = out or results.with_name(results.stem + "-report.html")
    rep = write_report(results, dest, min_cells=min_cells, model=model, gallery=gallery)
    summary = dict(rep.summary, model=", ".join(sorted(rep.models)))
    click.echo(json.dumps(summary, indent=1) if as_json else format_summary(summary))
    problems = rep.results.problems
    if problems:
        click.echo(f"Warning: {problems.describe(results)}", err=True)
    for note in rep.notes:
        click.echo(f"Note: {note}", err=True)
    click.echo(f"report: {dest}", err=as_json)
