"""``leukedge segment``."""

from __future__ import annotations

from pathlib import Path

import click

from leukedge.errors import PartialFailure
from leukedge.images import DEFAULT_MAX_PIXELS


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Cells as JSON Lines."
)
@click.option(
    "--crops",
    "crops",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also save each cell as a C-NMC-style PNG here.",
)
@click.option(
    "--crop-px",
    default=450,
    show_default=True,
    type=click.IntRange(16, 4096),
    help="Side of the saved crops (C-NMC: 450).",
)
@click.option(
    "--source-scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.01, 100.0),
    help="Frame µm/pixel ÷ C-NMC's; 2.0 if cells look half as big.",
)
@click.option("--max-pixels", default=DEFAULT_MAX_PIXELS, show_default=True, help="Refuse images larger than this.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT (and crops of the same images).")
@click.option(
    "--progress/--no-progress", default=None, help="Progress (a bar on a terminal, a line every 10 s in a log)."
)
def segment(
    inputs: tuple[str, ...],
    out: Path,
    crops: Path | None,
    crop_px: int,
    source_scale: float,
    max_pixels: int,
    overwrite: bool,
    progress: bool | None,
) -> None:
    """Find the white cells in smear images (files, folders, globs).

    Writes one JSON line per cell: {"source", "cell", "bbox": [x, y, w, h], "area"}
    (and "crop" with --crops).  An image with no cell gets a line with "cell": null.
    Unreadable images and folders are skipped and listed in OUT.errors.jsonl.
    An existing OUT is replaced only with --overwrite; an input is never written over.
    """
    from leukedge.segment_files import segment_files

    summary = segment_files(
        list(inputs),
        out,
        crops_dir=crops,
        crop_px=crop_px,
        source_scale=source_scale,
        max_pixels=max_pixels,
        overwrite=overwrite,
        progress=progress,
    )
    click.echo(
        f"{summary.images} image(s): {summary.cells} cell(s) → {out}"
        + (f", crops in {crops}" if crops else "")
        + (f"; {summary.empty} without cells" if summary.empty else "")
    )
    if summary.failed:
        for _path, why in summary.failed[:5]:
            click.echo(f"  skipped {why}", err=True)
        raise PartialFailure(
            f"{len(summary.failed)} of {summary.images + summary.unreadable_folders} input(s) could not be read; "
            f"listed in {summary.errors_path}",
            hint="fix or remove those files and run again",
        )
