"""The TensorRT engine cache moved to :mod:`leukedge.device.trt_engine` (engines are built on the device).

This name is kept for code that imported it from here.
"""

from __future__ import annotations

from leukedge.device.trt_engine import (
    ENGINE_DIR,
    PRECISIONS,
    EngineKey,
    check_cached,
    engine_dir,
    engine_files,
    engine_key,
    gpu_name,
    load_or_build_engine,
    onnx_for,
    profile_batches,
    require_tensorrt,
    tensorrt_available,
    tensorrt_version,
    user_cache_root,
)

__all__ = [
    "ENGINE_DIR",
    "PRECISIONS",
    "EngineKey",
    "check_cached",
    "engine_dir",
    "engine_files",
    "engine_key",
    "gpu_name",
    "load_or_build_engine",
    "onnx_for",
    "profile_batches",
    "require_tensorrt",
    "tensorrt_available",
    "tensorrt_version",
    "user_cache_root",
]
