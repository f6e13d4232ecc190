"""``screen``'s options that tune tracking: stage motion, focus and exposure checks, looks per cell.

Defaults are the measured ones of :mod:`leukedge.tracking` (docs/tracking.md says how they
were measured); ``tracking_settings`` turns the options into a ``TrackingSettings``.
"""

from __future__ import annotations

from typing import Any, Callable, Union

import click

from leukedge.tracking import LookPolicy, MotionSettings, QualitySettings, TrackingSettings, TrackSettings

_M, _Q, _T, _L = MotionSettings(), QualitySettings(), TrackSettings(), LookPolicy()


def tracking_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option(
            "--tracking",
            type=click.Choice(("auto", "on", "off")),
            default="auto",
            show_default=True,
            help="Count each physical cell once (auto: on, except for a folder of images, which are separate fields).",
        ),
        click.option(
            "--still-shift",
            type=click.FloatRange(0, 0.5),
            default=_M.still_fraction,
            show_default=True,
            help="Largest frame-to-frame shift, as a share of the frame width, that still counts as a resting stage.",
        ),
        click.option(
            "--min-response",
            type=click.FloatRange(0, 1, min_open=True, max_open=True),
            default=_M.min_response,
            show_default=True,
            help="Phase-correlation response below which a frame is unrelated to the last (a new field).",
        ),
        click.option(
            "--focus-ratio",
            type=click.FloatRange(0, 1),
            default=_Q.focus_ratio,
            show_default=True,
            help="Skip a frame as defocused below this share of the field's median focus score.",
        ),
        click.option(
            "--min-focus",
            type=click.FloatRange(min=0),
            default=_Q.min_focus,
            show_default=True,
            help="Skip a frame as defocused below this focus score (variance of the Laplacian), whatever the field.",
        ),
        click.option(
            "--max-clipped",
            type=click.FloatRange(0, 1),
            default=_Q.max_clipped_high,
            show_default=True,
            help="Skip a frame as over-exposed (or under-exposed) when this share of its pixels is clipped.",
        ),
        click.option(
            "--min-looks",
            type=click.IntRange(min=1),
            default=_T.min_looks,
            show_default=True,
            help="Good frames that must show a cell before it is counted.",
        ),
        click.option(
            "--max-looks",
            type=click.IntRange(min=1),
            default=_L.max_looks,
            show_default=True,
            help="Most looks combined into a cell's p_all (the sharpest).",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def tracking_settings(
    *,
    tracking: str = "auto",
    still_shift: float = _M.still_fraction,
    min_response: float = _M.min_response,
    focus_ratio: float = _Q.focus_ratio,
    min_focus: float = _Q.min_focus,
    max_clipped: float = _Q.max_clipped_high,
    min_looks: int = _T.min_looks,
    max_looks: int = _L.max_looks,
) -> Union[str, bool, TrackingSettings]:
    """What ``Screener(tracking=...)`` takes: "auto" or False when nothing was tuned, else settings."""
    if tracking == "off":
        return False
    tuned = TrackingSettings(
        motion=MotionSettings(min_response=min_response, still_fraction=still_shift),
        quality=QualitySettings(
            min_focus=min_focus, focus_ratio=focus_ratio, max_clipped_high=max_clipped, max_clipped_low=max_clipped
        ),
        tracks=TrackSettings(min_looks=min_looks, looks=LookPolicy(max_looks=max_looks)),
    )
    if tracking == "auto" and tuned == TrackingSettings():
        return "auto"
    return tuned
