"""``leukedge score``: folders of cells or smear images to a per-cell results file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import click

from leukedge.device.runtime_options import runtime_options
from leukedge.errors import InvalidInputError, PartialFailure


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--model", default="reference", show_default=True, help='Bundle folder, "reference", or a Keras .h5 file.'
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Results file: .csv, .jsonl or .parquet (one row per cell).",
)
@runtime_options
@click.option("--batch-size", type=click.IntRange(1, 4096), default=32, show_default=True, help="Cells per inference.")
@click.option(
    "--workers",
    type=click.IntRange(0, 256),
    default=None,
    help="Processes that decode, segment and preprocess (default: one per CPU core; 0: none).",
)
@click.option(
    "--mode",
    type=click.Choice(["auto", "cells", "smear"]),
    default="auto",
    show_default=True,
    help="cells: each image is one C-NMC-style cell; smear: find the cells in each image; auto: decide per image.",
)
@click.option(
    "--cluster",
    metavar="ADDRESS",
    default=None,
    help="Score on a Ray cluster: HOST:PORT of its head node, 'auto', or 'local' to start Ray here "
    "(needs leukedge[cluster]). --workers is then the number of scoring actors.",
)
@click.option(
    "--gpus-per-worker",
    type=click.FloatRange(0, 64),
    default=0.0,
    show_default=True,
    help="With --cluster: GPUs each scoring actor holds (e.g. 1, or 0.5 to share one).",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(1, 3600),
    default=30.0,
    show_default=True,
    help="With --cluster: seconds to wait for the cluster to answer.",
)
@click.option("--resume", is_flag=True, help="Continue OUT: score only the images it lacks.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress (a bar on a terminal, a line every 10 s in a log)."
)
def score(
    inputs: Tuple[str, ...],
    model: str,
    out: Path,
    backend: str,
    precision: str,
    batch_size: int,
    workers: Optional[int],
    mode: str,
    cluster: Optional[str],
    gpus_per_worker: float,
    connect_timeout: float,
    resume: bool,
    overwrite: bool,
    progress: Optional[bool],
) -> None:
    """Score images (files, folders searched recursively, or quoted globs) into OUT.

    Each row is one cell: source, cell index, bbox, area, p_all, label, the
    mode used, the model's hash, and for C-NMC-named files the subject and
    the true label.  Unreadable images are listed with the reason in
    OUT.errors.jsonl and the run goes on; the exit code is 8 if any failed.
    A killed run continues with --resume.
    """
    from leukedge.device.scoring import score_files

    where = None
    if cluster is not None:
        from leukedge.device.scoring.cluster import ClusterOptions

        where = ClusterOptions(
            cluster, workers=workers, gpus_per_worker=gpus_per_worker, connect_timeout_s=connect_timeout
        )
    elif gpus_per_worker:
        raise InvalidInputError("--gpus-per-worker applies to --cluster runs", hint="add --cluster ADDRESS")
    s = score_files(
        list(inputs),
        out,
        model=model,
        backend=backend,
        precision=precision,
        batch_size=batch_size,
        workers=workers,
        mode=mode,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
        cluster=where,
    )
    run = s.run
    modes = ", ".join(f"{n} as {m}" for m, n in sorted(s.modes.items()))
    click.echo(
        f"{s.scored} image(s) scored{f' ({modes})' if modes else ''}, {s.cells} cell(s) → {s.out}  "
        f"[model {run['model']}, {run['backend']} {run['precision']}, {s.seconds:.1f} s]"
    )
    notes = []
    if s.already_done:
        notes.append(f"{s.already_done} already in {s.out.name}")
    if s.dropped_rows:
        notes.append(f"{s.dropped_rows} row(s) of an interrupted image re-scored")
    if s.no_cells:
        notes.append(f"{s.no_cells} image(s) without cells")
    if s.duplicates:
        notes.append(f"{len(s.duplicates)} duplicate path(s) scored once")
    if s.nodes:
        notes.append(f"scored on {len(s.nodes)} cluster node(s)")
    if s.ignored:
        notes.append(f"{len(s.ignored)} non-image file(s) ignored")
    if notes:
        click.echo("  " + "; ".join(notes))
    if s.failed:
        for path, why in s.failed[:5]:
            click.echo(f"  failed: {why if path in why else f'{path}: {why}'}", err=True)
        raise PartialFailure(
            f"{len(s.failed)} of {s.listed} image(s) could not be scored; listed with the reason in {s.errors_path}",
            hint="fix or remove those files, then run again with --resume to score only what is missing",
        )
