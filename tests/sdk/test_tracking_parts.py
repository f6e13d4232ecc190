"""leukedge.tracking's parts: the assignment solver, the look rule, focus and exposure, stage motion."""

from __future__ import annotations

import itertools
import logging

import cv2
import numpy as np
import pytest

from leukedge.errors import InvalidInputError
from leukedge.synthetic import make_smear_frame
from leukedge.tracking import (
    MOVING,
    NEW_FIELD,
    STILL,
    Look,
    LookPolicy,
    MotionSettings,
    QualitySettings,
    StageMotion,
    combine_p_all,
    exposure_of,
    focus_score,
    working_grey,
)
from leukedge.tracking.assign import min_cost_pairs
from leukedge.tracking.quality import DEFOCUSED, OVER_EXPOSED, UNDER_EXPOSED, FocusJudge, exposure_problem


# -- assignment ------------------------------------------------------------------------------
def _brute_force(c: np.ndarray) -> float:
    n, m = c.shape
    if n <= m:
        return min(sum(c[i, j] for i, j in enumerate(p)) for p in itertools.permutations(range(m), n))
    return _brute_force(c.T)


def test_assignment_is_optimal_on_random_rectangular_matrices(rng) -> None:
    for trial in range(300):
        n, m = rng.integers(1, 6, 2)
        c = rng.random((n, m)) * 10
        if trial % 3 == 0:
            c = np.round(c)  # ties
        pairs = min_cost_pairs(c)
        assert len(pairs) == min(n, m)
        assert len({i for i, _ in pairs}) == len(pairs) and len({j for _, j in pairs}) == len(pairs)
        assert sum(c[i, j] for i, j in pairs) == pytest.approx(_brute_force(c))


def test_assignment_agrees_with_scipy_where_installed(rng) -> None:
    optimize = pytest.importorskip("scipy.optimize")
    c = rng.random((12, 9))
    rows, cols = optimize.linear_sum_assignment(c)
    assert sum(c[i, j] for i, j in min_cost_pairs(c)) == pytest.approx(c[rows, cols].sum())


def test_a_gated_column_does_not_take_a_row_from_a_cheap_pair() -> None:
    """Three cells, two tracks: track 1 can only pair expensively; without the option to stay
    unpaired it would take cell 0 and push track 0 onto cell 2 (seen on a synthetic slide)."""
    big = 1e6
    c = np.array([[0.0, 2.76], [big, big], [1.76, big]])
    assert min_cost_pairs(c, max_cost=0.5) == [(0, 0)]
    assert min_cost_pairs(c.T, max_cost=0.5) == [(0, 0)]


def test_gated_assignment_is_optimal_with_opting_out(rng) -> None:
    for _ in range(200):
        n, m = rng.integers(1, 5, 2)
        c = rng.random((n, m)) * 2
        gate = 0.8
        pairs = min_cost_pairs(c, max_cost=gate)
        got = sum(c[i, j] for i, j in pairs) + gate * (n - len(pairs))
        best = min(  # every partial matching, each unpaired row costing the gate
            sum(c[i, j] for i, j in zip(rows, cols)) + gate * (n - k)
            for k in range(0, min(n, m) + 1)
            for rows in itertools.combinations(range(n), k)
            for cols in itertools.permutations(range(m), k)
        )
        assert got == pytest.approx(best)


def test_assignment_gate_and_bad_input() -> None:
    c = np.array([[0.1, 5.0], [5.0, 0.9]])
    assert min_cost_pairs(c) == [(0, 0), (1, 1)]
    assert min_cost_pairs(c, max_cost=0.5) == [(0, 0)]
    assert min_cost_pairs(np.zeros((0, 3))) == []
    with pytest.raises(ValueError, match="finite"):
        min_cost_pairs(np.array([[np.inf]]))


# -- the look rule -------------------------------------------------------------------------
def test_first_look_counts_later_ones_only_when_sharper() -> None:
    policy = LookPolicy(max_looks=2, sharper_by=0.1)
    kept: list = []
    assert policy.admit(kept, Look(0, 0.9, 100.0))
    assert not policy.admit(kept, Look(1, 0.1, 105.0))  # not 10% sharper: the same evidence again
    assert policy.admit(kept, Look(2, 0.8, 120.0))
    assert policy.admit(kept, Look(3, 0.7, 200.0))
    assert [k.frame for k in kept] == [2, 3]  # at most two, the sharpest


def test_looks_combine_in_log_odds() -> None:
    assert combine_p_all([Look(0, 0.8, 1.0)]) == pytest.approx(0.8)
    assert combine_p_all([Look(0, 0.9, 1.0), Look(1, 0.1, 1.0)]) == pytest.approx(0.5)
    assert combine_p_all([Look(0, 1.0, 1.0), Look(1, 0.5, 1.0)]) > 0.99  # p = 1 is clipped, not infinite
    with pytest.raises(ValueError):
        combine_p_all([])
    with pytest.raises(InvalidInputError):
        LookPolicy(max_looks=0)


# -- focus and exposure ----------------------------------------------------------------------
def test_blur_lowers_the_focus_score_below_the_default_ratio() -> None:
    frame, _ = make_smear_frame(1, width=960, height=540, cells=3, scale=0.5)
    sharp = focus_score(working_grey(frame)[0])
    blurred = focus_score(working_grey(cv2.GaussianBlur(frame, (0, 0), 2.5))[0])
    assert blurred < QualitySettings().focus_ratio * sharp


@pytest.mark.shared_data
def test_defaults_separate_blurred_bccd_frames(smear_dir) -> None:
    paths = sorted(smear_dir.glob("*.jpg"))[:10]
    judge_settings = QualitySettings()
    for p in paths:
        rgb = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        judge = FocusJudge(judge_settings)
        for _ in range(3):
            assert judge.judge(focus_score(working_grey(rgb)[0])) is None
        blurred = cv2.GaussianBlur(rgb, (0, 0), 2.0)
        assert judge.judge(focus_score(working_grey(blurred)[0])) == DEFOCUSED
        assert exposure_problem(exposure_of(working_grey(rgb)[0]), judge_settings) is None
        glaring = np.clip(rgb.astype(np.float32) * 1.3, 0, 255).astype(np.uint8)
        assert exposure_problem(exposure_of(working_grey(glaring)[0]), judge_settings) == OVER_EXPOSED


def test_black_and_white_frames_are_badly_exposed() -> None:
    s = QualitySettings()
    assert exposure_problem(exposure_of(np.zeros((90, 160), np.uint8)), s) == UNDER_EXPOSED
    assert exposure_problem(exposure_of(np.full((90, 160), 255, np.uint8)), s) == OVER_EXPOSED
    assert exposure_problem(exposure_of(np.full((90, 160), 180, np.uint8)), s) is None


def test_focus_judge_follows_the_field_and_floor() -> None:
    judge = FocusJudge(QualitySettings(min_focus=5.0, focus_ratio=0.7, focus_window=5))
    assert judge.judge(3.0) == DEFOCUSED  # below the floor, whatever the field
    judge.reset()
    for _ in range(4):
        assert judge.judge(100.0) is None
    assert judge.judge(60.0) == DEFOCUSED
    assert judge.judge(95.0) is None


def test_quality_settings_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="focus_ratio"):
        QualitySettings(focus_ratio=1.5)
    with pytest.raises(InvalidInputError, match="min_response"):
        MotionSettings(min_response=0.0)


# -- stage motion ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slide_image() -> np.ndarray:
    img, _ = make_smear_frame(5, width=1600, height=900, cells=6, scale=0.5)
    return img


def _view(img: np.ndarray, x: int, y: int, w: int = 640, h: int = 360) -> np.ndarray:
    return np.ascontiguousarray(img[y : y + h, x : x + w])


def _step(m: StageMotion, frame: np.ndarray):
    grey, scale = working_grey(frame)
    return m.update(grey, scale)


def test_motion_recovers_shifts_and_classes_frames(slide_image) -> None:
    m = StageMotion()
    first = _step(m, _view(slide_image, 300, 200))
    assert first.state == NEW_FIELD and (first.x, first.y) == (0.0, 0.0)
    assert _step(m, _view(slide_image, 300, 200)).state == STILL
    moved = _step(m, _view(slide_image, 360, 180))  # the view moved right 60, up 20
    assert moved.state == MOVING
    assert moved.x == pytest.approx(60, abs=2) and moved.y == pytest.approx(-20, abs=2)
    back = _step(m, _view(slide_image, 360, 180))
    assert back.state == STILL and back.x == pytest.approx(60, abs=2)


def test_unrelated_frame_starts_a_new_field_and_a_revisit_is_recognised(slide_image) -> None:
    m = StageMotion()
    a = _step(m, _view(slide_image, 100, 100))
    _step(m, _view(slide_image, 100, 100))
    far = _step(m, _view(slide_image, 900, 500))  # a bumped stage: no overlap with the last frame
    assert far.state == NEW_FIELD and not far.revisit
    assert abs(far.x - a.x) > 1e6  # an island of its own: its cells cannot meet the first field's
    _step(m, _view(slide_image, 900, 500))
    home = _step(m, _view(slide_image, 110, 96))  # back, near the first field
    assert home.state == NEW_FIELD and home.revisit and home.field == a.field
    assert home.x == pytest.approx(10, abs=6) and home.y == pytest.approx(-4, abs=6)


def test_frame_size_change_starts_a_new_field_with_a_warning(slide_image, caplog) -> None:
    m = StageMotion()
    _step(m, _view(slide_image, 100, 100))
    with caplog.at_level(logging.WARNING, logger="leukedge.tracking"):
        step = _step(m, _view(slide_image, 100, 100, w=800, h=450))
    assert step.state == NEW_FIELD and "size changed" in (step.note or "")
    assert "frame size changed" in caplog.text
    assert _step(m, _view(slide_image, 100, 100, w=800, h=450)).state == STILL


def test_noise_and_black_frames_do_not_crash_motion(slide_image, rng) -> None:
    m = StageMotion()
    _step(m, _view(slide_image, 100, 100))
    noise = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    assert _step(m, noise).state == NEW_FIELD
    assert _step(m, np.zeros((360, 640, 3), np.uint8)).state == NEW_FIELD
    back = _step(m, _view(slide_image, 100, 100))
    assert back.state == NEW_FIELD and back.field == 0
