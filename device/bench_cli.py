"""``leukedge bench``: parse, call :func:`leukedge.device.bench.run_bench`, print a table or JSON."""

from __future__ import annotations

import json
from typing import Optional, Tuple

import click


@click.command()
@click.option("--model", default="reference", show_default=True, help="Bundle folder, 'reference', or a Keras .h5.")
@click.option(
    "--backend",
    "backends",
    multiple=True,
    type=click.Choice(["keras", "onnxruntime", "tensorrt"]),
    help="Measure only these backends (repeatable) [every usable one].",
)
@click.option("--batch-size", "batch_sizes", multiple=True, type=int, help="Batch sizes (repeatable) [1 and 32].")
@click.option("--seconds", default=3.0, show_default=True, help="Timed seconds per row, after warm-up.")
@click.option("--warmup", default=1.0, show_default=True, help="Warm-up seconds per row.")
@click.option("--threads", type=int, help="ONNX Runtime intra-op threads [all cores].")
@click.option(
    "--repeat", default=1, show_default=True, help="Timed windows per row; the fastest is kept (busy machines)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
def bench(
    model: str,
    backends: Tuple[str, ...],
    batch_sizes: Tuple[int, ...],
    seconds: float,
    warmup: float,
    threads: Optional[int],
    repeat: int,
    as_json: bool,
) -> None:
    """Measure classifier throughput (cells/s) for every backend and precision usable here.

    Keras FP32, ONNX Runtime FP32 and INT8, and TensorRT FP32/FP16/INT8 where TensorRT is
    present, each at batch 1 and 32, timed in one run after warm-up.  Preprocessing is
    timed separately.  The machine and its load are recorded with the numbers.
    """
    from leukedge.device.bench import BACKENDS, DEFAULT_BATCHES, format_table, run_bench

    report = run_bench(
        model,
        backends=backends or BACKENDS,
        batch_sizes=batch_sizes or DEFAULT_BATCHES,
        seconds=seconds,
        warmup=warmup,
        threads=threads,
        repeat=repeat,
        log=lambda msg: click.echo(msg, err=True),
    )
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else format_table(report))
