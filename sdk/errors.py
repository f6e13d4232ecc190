"""One exception family for everything leukedge raises on purpose.

Each class carries an exit code for the CLI and an optional ``hint``: the
command or change that fixes the problem.  The CLI prints ``Error: <message>``
and ``Hint: <hint>`` for these and never a traceback.
"""

from __future__ import annotations

import sys
from typing import Callable


class LeukedgeError(Exception):
    """Base class.  ``exit_code`` is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def user_message(self) -> str:
        """``Error: …`` and, when there is one, ``Hint: …``: what the CLI prints."""
        from leukedge.arguments import for_cli  # the CLI's flags instead of the Python arguments

        return f"Error: {for_cli(self.message)}" + (f"\nHint: {for_cli(self.hint)}" if self.hint else "")


class InvalidInputError(LeukedgeError):
    """A user's file, folder, option value or frame is not usable."""

    exit_code = 3


class InvalidImageError(InvalidInputError):
    """An image file or array that cannot be read or is of an unsupported kind."""


class BundleError(LeukedgeError):
    """A model bundle or model file is missing, malformed or inconsistent."""

    exit_code = 4


class ManifestError(BundleError):
    """``manifest.json`` fails validation.  ``field`` names the offending key."""

    def __init__(self, message: str, *, field: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


class MissingDependencyError(LeukedgeError):
    """An optional library (an extra) is not installed."""

    exit_code = 5


class HardwareUnavailableError(LeukedgeError):
    """A GPU, camera or vendor runtime that was asked for is not usable here."""

    exit_code = 6


class ClusterError(HardwareUnavailableError):
    """A compute cluster (Ray) that was asked for cannot be reached or cannot do the work."""


class GateFailedError(LeukedgeError):
    """A quality gate (INT8 acceptance, parity) did not pass."""

    exit_code = 7


class PartialFailure(LeukedgeError):
    """A batch job finished but some inputs failed; they are listed elsewhere."""

    exit_code = 8


class OutputError(LeukedgeError):
    """An output file or folder cannot be written: read-only, disk full, or another run writing it."""

    exit_code = 9


def run_main(main: Callable[[], int]) -> int:
    """Run a program's ``main()`` as the CLI runs its commands: a LeukedgeError becomes its
    ``Error:``/``Hint:`` lines on stderr and its exit code, never a traceback.

    ``sys.exit(run_main(main))`` at the bottom of a script built on leukedge.
    """
    try:
        return main()
    except LeukedgeError as exc:
        print(exc.user_message(), file=sys.stderr)
        return exc.exit_code
