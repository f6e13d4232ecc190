"""``synthetic://?seed=&fps=&cells=&width=&height=&frames=&pool=&p_all=&mode=``: drawn smear frames.

``mode=pool`` (default) cycles a few drawn frames (below).  ``mode=slide`` pans the camera
over one larger drawn slide (:class:`leukedge.synthetic_slide.MovingSlide`): still periods,
moves, revisits, a bumped stage, defocused and over-exposed frames; ``cells`` is then the
number per frame area (the slide holds about 8× as many), ``frames`` the path's length
(default 1000; the path repeats after it), and each frame's ``meta["truth"]`` says where the
camera was, how the frame was spoiled and which cells (by true id) it shows whole.

Drawing a 1080p frame takes ~120 ms on a small CPU, more than screening it
may, so the source draws a small pool of frames at ``open()`` and cycles
through it.  ``fps`` > 0 paces the frames like a camera (a live source:
the pipeline keeps only the newest); ``fps`` 0 (default) hands them out as
fast as they are taken and loses none.  ``frames`` ends the stream after
that many frames (default: endless).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import List, Optional, Tuple

import numpy as np

from leukedge.device.sources.base import FrameSource, RawFrame, UriParams
from leukedge.synthetic import SyntheticCell, make_smear_frame
from leukedge.synthetic_slide import MovingSlide, SlideSettings

PARAMS = ("seed", "fps", "cells", "width", "height", "frames", "pool", "p_all", "mode")
MODES = ("pool", "slide")
SLIDE_PATH = 1000  # frames of a slide path when ``frames`` is not given


class SyntheticSource(FrameSource):
    kind = "synthetic"

    def __init__(self, uri: str = "synthetic://") -> None:
        super().__init__(uri)
        q = UriParams(uri, PARAMS)
        self.seed = q.integer("seed", 0, hi=2**31 - 1)
        self.fps = q.number("fps", 0.0, hi=1000.0)
        self.cells = q.integer("cells", 10, hi=200)
        self.width = q.integer("width", 1920, lo=256, hi=8192)
        self.height = q.integer("height", 1080, lo=256, hi=8192)
        self.limit: Optional[int] = q.integer("frames", None, lo=1)
        self.pool_size = q.integer("pool", 4, lo=1, hi=64)
        self.p_all = q.number("p_all", 0.5, hi=1.0)
        self.mode = q.choice("mode", MODES, "pool")
        self.slide: Optional[MovingSlide] = None
        self.live = self.fps > 0
        self.pool: List[Tuple[np.ndarray, List[SyntheticCell]]] = []
        self._t0 = 0.0

    def _open(self) -> None:
        if self.mode == "slide":
            settings = SlideSettings(width=self.width, height=self.height, cells=self.cells * 8, p_all=self.p_all)
            self.slide = MovingSlide(self.seed, self.limit or SLIDE_PATH, settings)
            self._t0 = time.time()
            return
        n = self.pool_size if self.limit is None else min(self.pool_size, self.limit)
        self.pool = [
            make_smear_frame(self.seed + i, width=self.width, height=self.height, cells=self.cells, p_all=self.p_all)
            for i in range(n)
        ]
        self._t0 = time.time()

    def _read(self) -> Optional[RawFrame]:
        i = self.frames
        if self.limit is not None and i >= self.limit:
            return None
        if self.fps > 0:
            due = self._t0 + i / self.fps
            if self.wait(due - time.time()):
                return None
        if self.slide is not None:
            return self._slide_frame(i)
        image, drawn = self.pool[i % len(self.pool)]
        meta = {
            "pool_index": i % len(self.pool),
            "seed": self.seed + i % len(self.pool),
            "drawn": len(drawn),
            "drawn_all": sum(1 for c in drawn if c.label == "all"),
        }
        return image.copy(), meta  # a copy: a consumer may write into its frame

    def _slide_frame(self, i: int) -> RawFrame:
        assert self.slide is not None
        image, t = self.slide.frame(i % self.slide.frames)
        truth = {
            "slide_xy": [t.x, t.y],
            "motion": t.motion,
            "defocused": t.defocused,
            "overexposed": t.overexposed,
            "revisit": t.revisit,
            "whole_cells": [ident for ident, _, whole in t.cells if whole],
        }
        return image, {"truth": truth}

    def truth(self, index: int) -> List[SyntheticCell]:
        """The white cells drawn into frame ``index`` (labels and boxes, in frame pixels)."""
        if self.slide is not None:
            t = self.slide.truth(index % self.slide.frames)
            return [
                replace(self.slide.cells[ident], bbox=box, cx=box.x + box.w / 2, cy=box.y + box.h / 2)
                for ident, box, _ in t.cells
            ]
        return list(self.pool[index % len(self.pool)][1])
