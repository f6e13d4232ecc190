"""A real camera, on the device: ``LEUKEDGE_CAMERA=csi://0 pytest -m camera tests/device``.

Any live source URI works (``picamera2://0``, ``v4l2:///dev/video0``, ``rtsp://…``).  The
fakes in test_sources.py cover the adapters' logic; these check the real device delivers
what the pipeline expects.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from leukedge.device.pipeline import Pipeline
from leukedge.device.sources import make_source
from tests.device.device_helpers import ProjectionRuntime

pytestmark = pytest.mark.camera


def _uri() -> str:
    return os.environ["LEUKEDGE_CAMERA"]


def test_camera_delivers_rgb_frames_with_rising_capture_times() -> None:
    with make_source(_uri()) as cam:
        frames = [cam.read() for _ in range(10)]
    assert all(f is not None for f in frames)
    shapes = {f.image.shape for f in frames}  # type: ignore[union-attr]
    assert len(shapes) == 1 and next(iter(shapes))[2] == 3
    assert all(f.image.dtype == np.uint8 and f.meta["channel_order"] == "RGB" for f in frames)  # type: ignore[union-attr]
    times = [f.t_capture for f in frames]  # type: ignore[union-attr]
    assert times == sorted(times) and times[-1] > times[0]
    print(f"\n{_uri()}: {shapes.pop()} at {9 / (times[-1] - times[0]):.1f} fps; meta {frames[0].meta}")  # type: ignore[union-attr]


def test_pipeline_on_the_camera_keeps_the_newest_frame() -> None:
    pipe = Pipeline(make_source(_uri()), ProjectionRuntime(), preprocess="auto", duration=5.0)
    pipe.start()
    stats = pipe.run()
    print(f"\n{stats.to_dict()}")
    assert stats.frames > 0 and stats.latency_p50_ms is not None
