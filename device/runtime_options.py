"""``--backend`` and ``--precision``, as every command that runs a model offers them.

One definition for ``screen``, ``score`` and ``evaluate``: the choices come
from the runtime registry, so a new backend appears everywhere at once.
"""

from __future__ import annotations

from typing import Any, Callable

import click

from leukedge.device.runtimes import BACKENDS, PRECISIONS


def runtime_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--backend`` and ``--precision`` (passed as ``backend=``, ``precision=``) to a click command."""
    f = click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default="auto",
        show_default=True,
        help="auto: INT8 if the bundle's INT8 model passed its acceptance gate, else FP32 (FP16 on TensorRT).",
    )(f)
    return click.option(
        "--backend",
        type=click.Choice(("auto", *BACKENDS)),
        default="auto",
        show_default=True,
        help="auto: TensorRT where it is usable (Jetson), else ONNX Runtime; Keras for an .h5.",
    )(f)
