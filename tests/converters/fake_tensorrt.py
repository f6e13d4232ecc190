"""A small fake of the ``tensorrt`` module: enough API to drive leukedge's builder and cache logic.

It records what the builder asked for and "serializes" an engine whose bytes
name the ONNX file, the flags and the profile, so tests can see what was built.
``version`` picks the API generation: "8.x" (explicit-batch flag, no progress
monitor) or "10.x" (progress monitor); ``memory_pools=False`` is a pre-8.4 builder.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Dict, List, Optional


class _Enum:
    def __init__(self, name: str, value: int) -> None:
        self.name, self.value = name, value

    def __int__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return self.name


def make_fake_tensorrt(
    version: str = "10.3.0",
    *,
    memory_pools: bool = True,
    parse_ok: bool = True,
    build_ok: bool = True,
    fast_fp16: bool = True,
) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version  # type: ignore[attr-defined]
    calls: Dict[str, Any] = {"builds": 0, "network_flags": [], "flags": [], "profiles": [], "timing_in": []}
    trt.calls = calls  # type: ignore[attr-defined]
    major = int(version.split(".")[0])

    class Logger:
        WARNING = _Enum("WARNING", 2)

        def __init__(self, severity: Any) -> None:
            self.severity = severity

    class NetworkDefinitionCreationFlag:
        EXPLICIT_BATCH = _Enum("EXPLICIT_BATCH", 0)

    class BuilderFlag:
        FP16 = _Enum("FP16", 0)
        INT8 = _Enum("INT8", 1)

    class MemoryPoolType:
        WORKSPACE = _Enum("WORKSPACE", 0)

    class Dims(tuple):
        def __new__(cls, shape: List[int]) -> Dims:
            return super().__new__(cls, shape)

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    class _Network:
        def __init__(self) -> None:
            self.onnx: Optional[Path] = None

    class OnnxParser:
        def __init__(self, network: _Network, logger: Logger) -> None:
            self.network = network
            self.num_errors = 0 if parse_ok else 1

        def parse_from_file(self, path: str) -> bool:
            self.network.onnx = Path(path)
            return parse_ok

        def get_error(self, i: int) -> str:
            return "Unsupported ONNX op: FancyOp"

    class _TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = bytes(data)

        def serialize(self) -> memoryview:
            return memoryview(self.data + b"|timing")

    class _Profile:
        def set_shape(self, name: str, lo: Dims, opt: Dims, hi: Dims) -> None:
            calls["profiles"].append((name, tuple(lo), tuple(opt), tuple(hi)))

    class _Config:
        def __init__(self) -> None:
            self.progress_monitor: Any = None
            self.workspace: Optional[int] = None
            self._cache: Optional[_TimingCache] = None

        def set_flag(self, flag: _Enum) -> None:
            calls["flags"].append(flag.name)

        def add_optimization_profile(self, profile: _Profile) -> int:
            return 0

        def create_timing_cache(self, data: bytes) -> _TimingCache:
            calls["timing_in"].append(bytes(data))
            return _TimingCache(data)

        def set_timing_cache(self, cache: _TimingCache, ignore_mismatch: bool) -> bool:
            self._cache = cache
            return True

        def get_timing_cache(self) -> _TimingCache:
            assert self._cache is not None
            return self._cache

    if memory_pools:

        def set_memory_pool_limit(self: _Config, pool: _Enum, size: int) -> None:
            self.workspace = size

        _Config.set_memory_pool_limit = set_memory_pool_limit  # type: ignore[attr-defined]

    class Builder:
        platform_has_fast_fp16 = fast_fp16
        platform_has_fast_int8 = True

        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def create_network(self, flags: int = 0) -> _Network:
            calls["network_flags"].append(flags)
            return _Network()

        def create_builder_config(self) -> _Config:
            return _Config()

        def create_optimization_profile(self) -> _Profile:
            return _Profile()

        def build_serialized_network(self, network: _Network, config: _Config) -> Optional[bytes]:
            calls["builds"] += 1
            calls["workspace"] = config.workspace if memory_pools else getattr(config, "max_workspace_size", None)
            monitor = config.progress_monitor
            if monitor is not None:
                monitor.phase_start("Building engine", None, 2)
                monitor.phase_start("Tactic selection", "Building engine", 5)
                monitor.phase_finish("Tactic selection")
                monitor.step_complete("Building engine", 0)
                monitor.step_complete("Building engine", 1)
                monitor.phase_finish("Building engine")
            if not build_ok:
                return None
            assert network.onnx is not None
            return f"ENGINE onnx={network.onnx.name} flags={calls['flags']} trt={version}".encode()

    for obj in (
        Logger,
        NetworkDefinitionCreationFlag,
        BuilderFlag,
        MemoryPoolType,
        Dims,
        IProgressMonitor,
        OnnxParser,
        Builder,
    ):
        setattr(trt, obj.__name__, obj)
    if major < 10:
        del trt.IProgressMonitor  # type: ignore[attr-defined]
    return trt
