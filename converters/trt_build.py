"""The TensorRT engine builder moved to :mod:`leukedge.device.trt_build`; this name is kept for old imports."""

from __future__ import annotations

from leukedge.device.trt_build import ElapsedTicker, build_serialized_engine, make_progress_monitor, trt_major

__all__ = ["ElapsedTicker", "build_serialized_engine", "make_progress_monitor", "trt_major"]
