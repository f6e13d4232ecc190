"""Screener life cycle: close() from a callback, and a closed Screener refuses to run again."""

from __future__ import annotations

import logging

import pytest

import leukedge
from leukedge.errors import InvalidInputError
from tests.device.device_helpers import SMALL_SYNTHETIC

LONG = SMALL_SYNTHETIC + "&frames=500"


@pytest.mark.parametrize("how", ["run", "iterate"])
def test_close_from_a_callback_stops_and_closes_cleanly(bundle, caplog, how) -> None:
    s = leukedge.Screener(bundle, source=LONG, preprocess="cpu")

    def on_frame(result) -> None:
        if result.index == 1:
            s.close()

    s.on_frame(on_frame)
    with caplog.at_level(logging.WARNING):
        if how == "run":
            stats = s.run()
            frames = stats.frames
        else:
            frames = len(list(s))
    assert 2 <= frames < 500  # stopped soon after the callback asked, frames in flight drained
    assert s.callback_errors == 0
    assert "cannot join" not in caplog.text
    with pytest.raises(InvalidInputError, match="this Screener is closed"):
        s.run()


@pytest.mark.parametrize("call", ["run", "start", "open", "iterate"])
def test_a_closed_screener_refuses_instead_of_returning_stale_results(bundle, call) -> None:
    s = leukedge.Screener(bundle, source=SMALL_SYNTHETIC + "&frames=2", preprocess="cpu")
    s.run()
    s.close()  # closing twice is fine
    with pytest.raises(InvalidInputError, match=r"Screener\.\w+.*: this Screener is closed"):
        if call == "iterate":
            list(s)
        else:
            getattr(s, call)()
