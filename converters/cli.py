"""``leukedge convert``: parse, call :func:`leukedge.converters.convert.convert_model`, print."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import click

from leukedge.errors import GateFailedError


@click.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out", type=click.Path(file_okay=True, path_type=Path), help="Bundle folder [MODEL's name + '-bundle']."
)
@click.option(
    "--calib-data",
    type=click.Path(path_type=Path),
    help="Real cell images for INT8 calibration (all/ and hem/ subfolders or C-NMC names). Without it: FP32 only.",
)
@click.option("--calib-size", default=500, show_default=True, help="Calibration cells, balanced over classes.")
@click.option(
    "--calib-method", type=click.Choice(["minmax", "percentile", "entropy"]), default="minmax", show_default=True
)
@click.option(
    "--validate",
    type=click.Path(path_type=Path),
    help="Labelled cells never used in training (held-back subjects): runs the INT8 acceptance gate.",
)
@click.option("--engine", is_flag=True, help="Also build a TensorRT engine here (needs TensorRT and a GPU).")
@click.option(
    "--precision",
    type=click.Choice(["fp16", "int8"]),
    default="int8",
    show_default=True,
    help="Precision of the TensorRT engine.",
)
@click.option("--max-batch", default=32, show_default=True, help="Largest batch of the TensorRT engine profile.")
@click.option(
    "--max-flip-rate", default=0.01, show_default=True, help="Gate: largest share of cells whose label may change."
)
@click.option(
    "--max-delta-points",
    default=1.0,
    show_default=True,
    help="Gate: largest change of sensitivity and of specificity, in percentage points.",
)
def convert(
    model: Path,
    out: Optional[Path],
    calib_data: Optional[Path],
    calib_size: int,
    calib_method: str,
    validate: Optional[Path],
    engine: bool,
    precision: str,
    max_batch: int,
    max_flip_rate: float,
    max_delta_points: float,
) -> None:
    """Convert a trained MODEL (.h5 or .keras from 'leukedge train') into a model bundle.

    Writes manifest.json, model.onnx (FP32) and, with --calib-data, model.int8.onnx (Q/DQ) and its
    calibration ranges.  With --validate, INT8 must agree with FP32 on labelled cells or the command
    fails (exit 7) after writing the bundle, with the table that says why.
    """
    from leukedge.converters.convert import ConvertOptions, convert_model
    from leukedge.converters.gate import GateThresholds, gate_table

    options = ConvertOptions(
        out=out,
        calib_data=calib_data,
        calib_size=calib_size,
        calib_method=calib_method,
        validate=validate,
        engine=engine,
        precision=precision,
        max_batch=max_batch,
        thresholds=GateThresholds(
            max_flip_rate=max_flip_rate, max_sens_delta=max_delta_points, max_spec_delta=max_delta_points
        ),
    )
    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731 - progress to stderr, results to stdout
    try:
        result = convert_model(model, options, echo=echo)
    except GateFailedError as err:
        from leukedge.converters.inputs import default_out

        root = options.out or default_out(model)
        _print_gate(root)
        raise err
    click.echo(gate_table(result.bundle.manifest.parity))
    root = result.bundle.root
    files = ", ".join(f"{mf.path}" for mf in result.bundle.manifest.files.values())
    click.echo(f"\nBundle {root} ({files}) in {result.seconds['total']:.1f} s")
    if result.engine is not None:
        click.echo(f"TensorRT engine: {result.engine}")
    click.echo("Next:")
    click.echo(f"  leukedge screen --model {root} --source synthetic:// --out cells.jsonl")
    click.echo(f"  leukedge score CELLS_OR_SMEARS_DIR --model {root} --out results.jsonl")
    click.echo(f"  leukedge bench --model {root}")


def _print_gate(root: Path) -> None:
    from leukedge.bundle import Bundle
    from leukedge.converters.gate import gate_table
    from leukedge.errors import BundleError

    with contextlib.suppress(BundleError):
        click.echo(gate_table(Bundle.load(root, verify=False).manifest.parity))
