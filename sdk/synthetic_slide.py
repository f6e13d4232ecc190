"""A synthetic slide that moves under the camera: still periods, moves, revisits, a bumped
stage, defocused and over-exposed frames, with the true identity of every white cell.

One large smear is drawn once (:func:`leukedge.synthetic.make_smear_frame`); each frame is a
window of it at the camera's position, plus sensor noise, motion blur while the stage moves,
a Gaussian blur on defocused frames and a gain on over-exposed ones.  ``SlidePath`` is the
camera's plan, fixed by the seed; ``MovingSlide.frame(i)`` draws frame ``i`` and says what it
shows (:class:`SlideFrame`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import cv2
import numpy as np

from leukedge.synthetic import SyntheticCell, make_smear_frame
from leukedge.types import BBox

STILL, MOVING, JUMP = "still", "moving", "jump"


@dataclass(frozen=True)
class SlideSettings:
    width: int = 1920  # the camera's frame
    height: int = 1080
    slide_factor: float = 2.5  # the slide is this many frames wide and high
    cells: int = 80  # white cells asked for (fewer fit on a small slide)
    p_all: float = 0.5
    still: Tuple[int, int] = (12, 40)  # frames per still period
    speed: Tuple[float, float] = (40.0, 140.0)  # px per frame while moving
    p_revisit: float = 0.3  # share of moves that go back to a field seen before
    p_jump: float = 0.1  # share of moves that are an instant jump (a bumped stage)
    p_defocus: float = 0.05  # share of still frames blurred out of focus
    p_overexposed: float = 0.02  # share of still frames over-exposed
    defocus_sigma: Tuple[float, float] = (5.0, 9.0)  # Gaussian blur, frame px
    overexposure_gain: float = 1.6
    noise: float = 2.0  # sensor noise, grey levels (sd)


@dataclass(frozen=True)
class SlideFrame:
    """Ground truth of one frame."""

    index: int
    x: int  # the frame's top-left corner on the slide
    y: int
    motion: str  # still, moving or jump (the first frame after a jump)
    defocused: bool
    overexposed: bool
    field: Optional[int]  # the planned field while still, else None
    revisit: bool  # the first frame of a still period at a field seen before
    cells: Tuple[Tuple[int, BBox, bool], ...]  # (cell id, box in frame px, wholly inside the frame)


@dataclass(frozen=True)
class _Step:
    x: float
    y: float
    motion: str
    field: Optional[int]
    revisit: bool
    vx: float = 0.0
    vy: float = 0.0


class SlidePath:
    """Where the camera is at each frame: fields to rest on, moves between them."""

    def __init__(self, settings: SlideSettings, frames: int, seed: int) -> None:
        self.settings = settings
        rng = np.random.default_rng(seed + 7919)
        s = settings
        self.max_x = int(s.width * (s.slide_factor - 1))
        self.max_y = int(s.height * (s.slide_factor - 1))
        fields: List[Tuple[float, float]] = [(self.max_x / 2, self.max_y / 2)]
        self.steps: List[_Step] = []
        here, field = fields[0], 0
        while len(self.steps) < frames:
            n_still = int(rng.integers(s.still[0], s.still[1] + 1))
            revisit = bool(self.steps) and field < len(fields) - 1
            for k in range(n_still):
                self.steps.append(_Step(here[0], here[1], STILL, field, revisit and k == 0))
            if len(fields) > 2 and rng.random() < s.p_revisit:
                field = int(rng.integers(0, len(fields) - 1))
                target = fields[field]
            else:
                target = self._new_spot(rng, here)
                fields.append(target)
                field = len(fields) - 1
            if rng.random() < s.p_jump:
                here = target
                self.steps.append(_Step(here[0], here[1], JUMP, None, False))
                continue
            here = self._move(rng, here, target)
        self.steps = self.steps[:frames]
        self.fields = fields

    def _new_spot(self, rng: np.random.Generator, here: Tuple[float, float]) -> Tuple[float, float]:
        # Far enough that the new field shows mostly new cells, near enough to pan there.
        for _ in range(100):
            x = float(rng.uniform(0, self.max_x))
            y = float(rng.uniform(0, self.max_y))
            if abs(x - here[0]) > 0.6 * self.settings.width or abs(y - here[1]) > 0.6 * self.settings.height:
                return x, y
        return float(rng.uniform(0, self.max_x)), float(rng.uniform(0, self.max_y))

    def _move(
        self, rng: np.random.Generator, here: Tuple[float, float], target: Tuple[float, float]
    ) -> Tuple[float, float]:
        speed = float(rng.uniform(*self.settings.speed))
        dist = float(np.hypot(target[0] - here[0], target[1] - here[1]))
        n = max(1, int(np.ceil(dist / speed)))
        vx, vy = (target[0] - here[0]) / n, (target[1] - here[1]) / n
        for k in range(1, n + 1):
            self.steps.append(_Step(here[0] + vx * k, here[1] + vy * k, MOVING, None, False, vx, vy))
        return target


class MovingSlide:
    """A drawn slide and a camera path over it; ``frame(i)`` is deterministic."""

    def __init__(self, seed: int = 0, frames: int = 1000, settings: Optional[SlideSettings] = None) -> None:
        self.settings = s = settings or SlideSettings()
        self.seed = seed
        self.frames = frames
        sw, sh = int(s.width * s.slide_factor), int(s.height * s.slide_factor)
        self.image, drawn = make_smear_frame(seed, width=sw, height=sh, cells=s.cells, p_all=s.p_all)
        self.cells: List[SyntheticCell] = list(drawn)
        self.path = SlidePath(s, frames, seed)
        rng = np.random.default_rng(seed + 104729)
        n = len(self.path.steps)
        self._defocus = rng.random(n) < s.p_defocus
        self._overexposed = (rng.random(n) < s.p_overexposed) & ~self._defocus
        self._sigma = rng.uniform(*s.defocus_sigma, n)

    def truth(self, index: int) -> SlideFrame:
        st = self.path.steps[index]
        s = self.settings
        x, y = round(st.x), round(st.y)
        still = st.motion == STILL
        inside = []
        for ident, c in enumerate(self.cells):
            b = c.bbox
            fx, fy = b.x - x, b.y - y
            if fx + b.w <= 0 or fy + b.h <= 0 or fx >= s.width or fy >= s.height:
                continue
            whole = fx >= 0 and fy >= 0 and fx + b.w <= s.width and fy + b.h <= s.height
            inside.append((ident, BBox(fx, fy, b.w, b.h), whole))
        return SlideFrame(
            index,
            x,
            y,
            st.motion,
            bool(self._defocus[index]) and still,
            bool(self._overexposed[index]) and still,
            st.field,
            st.revisit,
            tuple(inside),
        )

    def frame(self, index: int) -> Tuple[np.ndarray, SlideFrame]:
        """Frame ``index`` (H×W×3 uint8 RGB) and its truth."""
        t = self.truth(index)
        s = self.settings
        st = self.path.steps[index]
        view = self.image[t.y : t.y + s.height, t.x : t.x + s.width].astype(np.float32)
        if st.motion == MOVING:
            view = _motion_blur(view, st.vx, st.vy)
        if t.defocused:
            view = cv2.GaussianBlur(view, (0, 0), float(self._sigma[index]))
        if t.overexposed:
            view *= s.overexposure_gain
        if s.noise > 0:
            noise = np.empty_like(view)
            cv2.setRNGSeed(self.seed * 1_000_003 + index)
            cv2.randn(noise, 0.0, s.noise)
            view += noise
        return np.clip(view, 0, 255).astype(np.uint8), t


def _motion_blur(view: np.ndarray, vx: float, vy: float, *, samples: int = 6) -> np.ndarray:
    """Blur along the motion, as a camera exposing for half the frame time would see
    (the mean of a few shifted copies: much cheaper than a long line kernel)."""
    length = 0.5 * float(np.hypot(vx, vy))
    if length < 2:
        return view
    h, w = view.shape[:2]
    out = np.zeros_like(view)
    for t in np.linspace(-0.5, 0.5, samples):
        m = np.array([[1, 0, t * 0.5 * vx], [0, 1, t * 0.5 * vy]], dtype=np.float32)
        out += cv2.warpAffine(view, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    return out / samples
