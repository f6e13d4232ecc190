"""run_main: scripts built on leukedge report errors as the CLI does."""

from __future__ import annotations

import pytest

from leukedge import BundleError, InvalidInputError, run_main


def test_a_leukedge_error_becomes_error_and_hint_lines_and_its_exit_code(capsys: pytest.CaptureFixture) -> None:
    def main() -> int:
        raise BundleError("bundle/: not a model bundle folder", hint="run 'leukedge convert model.h5'")

    assert run_main(main) == 4
    err = capsys.readouterr().err
    assert err == "Error: bundle/: not a model bundle folder\nHint: run 'leukedge convert model.h5'\n"


def test_no_hint_line_without_a_hint_and_main_s_own_code_passes_through(capsys: pytest.CaptureFixture) -> None:
    assert run_main(lambda: 0) == 0
    assert run_main(lambda: 7) == 7

    def bad() -> int:
        raise InvalidInputError("--frames: -1 is not a frame count")

    assert run_main(bad) == 3
    assert capsys.readouterr().err == "Error: --frames: -1 is not a frame count\n"


def test_other_exceptions_are_not_swallowed() -> None:
    def broken() -> int:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        run_main(broken)
