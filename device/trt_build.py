"""Build a serialized TensorRT engine from ONNX: the thin layer over TensorRT's Python API.

Written for JetPack 5 (TensorRT 8.5/8.6) and JetPack 6 (TensorRT 10):

* TensorRT 8 needs the EXPLICIT_BATCH network flag; TensorRT 10 is always
  explicit-batch and deprecates the flag.
* The workspace is ``set_memory_pool_limit`` (8.4+); older builders only had
  ``max_workspace_size``.
* TensorRT 10 reports build progress through an ``IProgressMonitor``; on 8.x a
  thread prints the elapsed time instead.
* INT8 comes only from the Q/DQ nodes in the ONNX (explicit quantization): no
  calibrator, which TensorRT 10 deprecates and 11 removes.

Type-checked against ``tensorrt-stubs`` in the test suite (tests/converters/test_trt_types.py).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Tuple

from leukedge.errors import BundleError, HardwareUnavailableError

if TYPE_CHECKING:  # for annotations only: this module imports without TensorRT
    import tensorrt as trt

Log = Callable[[str], None]


def trt_major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def make_progress_monitor(log: Log) -> trt.IProgressMonitor:
    """A ``tensorrt.IProgressMonitor`` that prints phases and steps; TensorRT 10 only."""
    import tensorrt as trt

    class _PhasePrinter(trt.IProgressMonitor):
        """Thread-safe: TensorRT calls it from its own threads."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._depth: dict = {}
            self._steps: dict = {}
            self._t0 = time.perf_counter()

        def phase_start(self, phase_name: str, parent_phase: Optional[str], num_steps: int) -> None:
            with self._lock:
                depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
                self._depth[phase_name] = depth
                self._steps[phase_name] = num_steps
                if depth <= 1:
                    log(f"{'  ' * depth}[TensorRT {self._elapsed()}] {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                if self._depth.get(phase_name) == 0:
                    log(
                        f"[TensorRT {self._elapsed()}] {phase_name}: step {step + 1}/{self._steps.get(phase_name, '?')}"
                    )
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                if self._depth.pop(phase_name, 9) <= 1:
                    log(f"[TensorRT {self._elapsed()}] {phase_name} done")

        def _elapsed(self) -> str:
            return f"{time.perf_counter() - self._t0:5.0f} s"

    return _PhasePrinter()


class ElapsedTicker:
    """Prints the elapsed build time every ``every`` seconds, where TensorRT has no progress monitor."""

    def __init__(self, log: Log, every: float = 15.0) -> None:
        self._log, self._every = log, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trt-build-ticker", daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        while not self._stop.wait(self._every):
            self._log(f"[TensorRT] building the engine … {time.perf_counter() - t0:.0f} s")

    def __enter__(self) -> ElapsedTicker:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


def build_serialized_engine(
    onnx_path: Path,
    *,
    precision: str,
    input_name: str,
    shapes: Sequence[Tuple[int, ...]],
    timing_cache: bytes,
    workspace_bytes: int,
    progress: bool,
    log: Log,
) -> Tuple[bytes, bytes]:
    """Parse ``onnx_path`` and build with the (min, opt, max) input ``shapes``, starting from the
    serialized ``timing_cache`` (may be empty); returns (engine, updated timing cache)."""
    import tensorrt as trt

    major = trt_major(trt.__version__)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BundleError(
            f"{onnx_path}: TensorRT {trt.__version__} cannot parse this ONNX ({errors or 'no detail'})",
            hint="re-convert with this leukedge version; check that this TensorRT supports opset 17",
        )
    config = builder.create_builder_config()
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    else:  # TensorRT before 8.4
        setattr(config, "max_workspace_size", workspace_bytes)  # noqa: B010 - absent from TensorRT 10's API
    _set_precision(builder, config, precision, log)
    profile = builder.create_optimization_profile()
    lo, opt, hi = (trt.Dims(list(s)) for s in shapes)
    profile.set_shape(input_name, lo, opt, hi)
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log("TensorRT: the saved timing cache does not fit this TensorRT/GPU; starting a new one")
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    if progress and major >= 10:
        config.progress_monitor = make_progress_monitor(log)
        serialized = builder.build_serialized_network(network, config)
    elif progress:
        with ElapsedTicker(log):
            serialized = builder.build_serialized_network(network, config)
    else:
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise HardwareUnavailableError(
            f"TensorRT {trt.__version__} failed to build a {precision} engine from {onnx_path}; its log above says why",
            hint="try --precision fp16, a smaller --max-batch, or more workspace",
        )
    return bytes(memoryview(serialized)), bytes(memoryview(config.get_timing_cache().serialize()))


def _set_precision(builder: trt.Builder, config: trt.IBuilderConfig, precision: str, log: Log) -> None:
    import tensorrt as trt

    if precision == "fp16":
        if not builder.platform_has_fast_fp16:
            log("TensorRT: this GPU has no fast FP16; the engine may be no faster than FP32")
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        # Explicit quantization: the scales come from the Q/DQ nodes.  Layers the gate kept in
        # float stay FP32, as validated (no FP16 flag).
        if not builder.platform_has_fast_int8:
            log("TensorRT: this GPU has no fast INT8; the engine may be slow")
        config.set_flag(trt.BuilderFlag.INT8)
