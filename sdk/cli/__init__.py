"""The ``leukedge`` command line: a thin click group over the registry."""

from __future__ import annotations

import importlib
import math
import sys
from typing import Any

import click

from leukedge._version import __version__
from leukedge.arguments import for_cli
from leukedge.cli.registry import COMMANDS, CommandSpec
from leukedge.errors import LeukedgeError, MissingDependencyError


def fail(err: LeukedgeError) -> None:
    """Print a user-facing error (no traceback) and exit with its code."""
    click.secho(f"Error: {for_cli(err.message)}", fg="red", err=True)  # the flags, not the Python arguments
    if err.hint:
        click.echo(f"Hint: {for_cli(err.hint)}", err=True)
    sys.exit(err.exit_code)


def _missing(spec: CommandSpec) -> list[str]:
    from leukedge import extras

    return [name for name in spec.requires if not extras.has(name)]


class _Unavailable(click.Command):
    """Stands in for a command whose extras are missing: lists in --help, explains when run."""

    def __init__(self, name: str, spec: CommandSpec, missing: list[str]) -> None:
        super().__init__(
            name, help=spec.summary, short_help=spec.summary, context_settings={"ignore_unknown_options": True}
        )
        self.params = [click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)]
        self.spec = spec
        self.missing = missing

    def invoke(self, ctx: click.Context) -> Any:
        extra = self.spec.extra or "all"
        fail(
            MissingDependencyError(
                f"'leukedge {self.name}' needs {', '.join(self.missing)}, which is not installed",
                hint=f"pip install 'leukedge[{extra}]'",
            )
        )


class FiniteFloat(click.ParamType):
    """A float option that refuses NaN and infinities, whatever its range says.

    click's ``FloatRange`` compares with ``<``, which is False for NaN, so
    ``--source-scale nan`` would pass every bound; every float option of
    every command gets this check (:func:`_finite_floats`).
    """

    def __init__(self, inner: click.ParamType) -> None:
        self.inner = inner
        self.name = inner.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = self.inner.convert(value, param, ctx)
        if isinstance(number, float) and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number

    def get_metavar(self, *args: Any, **kw: Any) -> str | None:
        return self.inner.get_metavar(*args, **kw)

    def __repr__(self) -> str:
        return repr(self.inner)


def _finite_floats(cmd: click.Command) -> None:
    for p in cmd.params:
        if isinstance(p.type, click.types.FloatParamType):
            p.type = FiniteFloat(p.type)


class LeukedgeGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        if ctx.resilient_parsing:  # shell completion: do not import anything heavy
            return click.Command(name, help=spec.summary, short_help=spec.summary)
        missing = _missing(spec)
        if missing:
            return _Unavailable(name, spec, missing)
        module, attr = spec.target.split(":")
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                return _Unavailable(name, spec, [f"the module {module} (not part of this installation)"])
            raise
        assert isinstance(cmd, click.Command)
        _finite_floats(cmd)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name, spec in COMMANDS.items():
            missing = _missing(spec)
            note = f"  [needs: pip install 'leukedge[{spec.extra}]']" if missing and spec.extra else ""
            rows.append((name, spec.summary + note))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LeukedgeError as err:
            fail(err)
        except OSError as exc:  # a file the command writes or reads failed at the OS (full disk, read-only)
            from leukedge.outlock import os_error

            fail(os_error(exc))
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


@click.group(cls=LeukedgeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="leukedge")
def main() -> None:
    """leukedge: screen blood smears for acute lymphoblastic leukemia (ALL), on the edge.

    Train the paper's VGG13 on C-NMC cells, convert it to ONNX, INT8 and
    TensorRT, and classify every white cell a microscope camera sees.
    """
