"""Classifier throughput (cells/s) for every backend and precision usable on this machine.

Each row opens one runtime, warms it up, then times ``predict`` on batches of
preprocessed synthetic cells for a fixed time, in one run; the CPU
preprocessing (``leukedge.preprocess``) is timed as its own row, so a reader
can add the two.  The machine (CPU model, cores, INT8 instructions, load
average before and after) is recorded with the numbers, because the numbers
mean nothing without it.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from leukedge.arguments import arg
from leukedge.device.runtimes import ModelRef, open_runtime, resolve_model
from leukedge.errors import HardwareUnavailableError, InvalidInputError, LeukedgeError
from leukedge.extras import has
from leukedge.preprocess import preprocess

BACKENDS = ("keras", "onnxruntime", "tensorrt")
CANDIDATES: Tuple[Tuple[str, str], ...] = (
    ("keras", "fp32"),
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("tensorrt", "fp32"),
    ("tensorrt", "fp16"),
    ("tensorrt", "int8"),
)
DEFAULT_BATCHES = (1, 32)
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


@dataclass
class BenchRow:
    backend: str
    precision: str
    batch: int
    cells_per_s: float
    ms_per_batch: float  # median
    runs: int
    runtime: str  # what the runtime says it is (e.g. "onnxruntime int8 (CPU)")
    gate: Optional[str] = None  # INT8: "passed", "failed" or "not run"


@dataclass
class BenchReport:
    model: Dict[str, Any]
    machine: Dict[str, Any]
    settings: Dict[str, Any]
    rows: List[BenchRow] = field(default_factory=list)
    skipped: List[Dict[str, str]] = field(default_factory=list)
    preprocess: Optional[Dict[str, float]] = None

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["rows"] = [asdict(r) for r in self.rows]
        return d

    def row(self, backend: str, precision: str, batch: int) -> Optional[BenchRow]:
        return next((r for r in self.rows if (r.backend, r.precision, r.batch) == (backend, precision, batch)), None)


def machine_info() -> Dict[str, Any]:
    cpu, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model") and not cpu:
                    cpu = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags |= set(value.split())
    except OSError:  # not Linux: fall back to what platform knows
        pass
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "int8_instructions": sorted(flags & set(CPU_FLAGS)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": _load(),
    }


def _load() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def plan(ref: ModelRef, backends: Sequence[str]) -> Tuple[List[Tuple[str, str]], List[Dict[str, str]]]:
    """Which (backend, precision) pairs can run here, and why each other one cannot."""
    run, skipped = [], []
    for backend, precision in CANDIDATES:
        if backend not in backends:
            continue
        why = _unusable(ref, backend, precision)
        if why:
            skipped.append({"backend": backend, "precision": precision, "reason": why})
        else:
            run.append((backend, precision))
    return run, skipped


def _unusable(ref: ModelRef, backend: str, precision: str) -> Optional[str]:
    bundle = ref.bundle
    if backend == "keras":
        if not has("tensorflow"):
            return "TensorFlow is not installed (pip install 'leukedge[train]')"
        if ref.keras_path is None and (bundle is None or not bundle.has("keras")):
            return "the bundle carries no Keras model"
        return None
    if bundle is None:
        return "needs a model bundle (leukedge convert model.h5), not a Keras file"
    if precision == "int8" and not bundle.has("onnx_int8"):
        return "the bundle has no INT8 model (convert with --calib-data)"
    if backend == "onnxruntime":
        return None if precision != "fp16" else "FP16 is a TensorRT precision"
    from leukedge.extras import tensorrt_usable

    if not tensorrt_usable():
        return "TensorRT is not installed here (JetPack, or NVIDIA's tensorrt wheel)"
    if not has("pycuda"):
        return "pycuda is not installed (pip install 'leukedge[jetson]')"
    return None


def sample_crops(ref: ModelRef, n: int, *, seed: int = 0) -> List[np.ndarray]:
    """Synthetic C-NMC-style cells of both classes at the manifest's canvas size."""
    from leukedge.synthetic import make_cell_image

    size = ref.manifest.preprocessing.crop.canvas_px
    return [make_cell_image(seed + i, ("hem", "all")[i % 2], size=size) for i in range(n)]


def time_calls(fn: Callable[[], Any], *, seconds: float, warmup: float, min_runs: int = 3) -> List[float]:
    """Call ``fn`` for ``warmup`` seconds (at least twice), then time it for ``seconds`` (at least ``min_runs``)."""
    t_end = time.perf_counter() + warmup
    for i in range(10**9):
        fn()
        if i >= 1 and time.perf_counter() >= t_end:
            break
    times: List[float] = []
    t_end = time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def run_bench(
    model: Any,
    *,
    backends: Sequence[str] = BACKENDS,
    batch_sizes: Sequence[int] = DEFAULT_BATCHES,
    seconds: float = 3.0,
    warmup: float = 1.0,
    threads: Optional[int] = None,
    repeat: int = 1,
    log: Callable[[str], None] = lambda _m: None,
) -> BenchReport:
    """Measure every usable (backend, precision) at each batch size; see the module docstring."""
    _check_arguments(backends, batch_sizes, repeat)
    ref = resolve_model(model)
    todo, skipped = plan(ref, backends)
    if not todo:
        reasons = "; ".join(f"{s['backend']} {s['precision']}: {s['reason']}" for s in skipped)
        raise HardwareUnavailableError(f"nothing to measure here: {reasons}", hint="choose another --backend")
    machine = machine_info()
    report = BenchReport(
        model=_describe(ref),
        machine=machine,
        settings={
            "batch_sizes": list(batch_sizes),
            "seconds": seconds,
            "warmup": warmup,
            "threads": threads,
            "repeat": repeat,
        },
        skipped=skipped,
    )
    crops = sample_crops(ref, max(batch_sizes))
    spec = ref.manifest.preprocessing
    times = time_calls(lambda: preprocess(crops, spec), seconds=min(seconds, 2.0), warmup=0.2)
    report.preprocess = {"batch": len(crops), "cells_per_s": len(crops) / statistics.median(times)}
    x = preprocess(crops, spec)
    for backend, precision in todo:
        options = {"threads": threads} if backend == "onnxruntime" and threads else {}
        try:
            with open_runtime(ref, backend=backend, precision=precision, **options) as rt:
                for batch in batch_sizes:
                    runs = _timed_windows(rt, np.ascontiguousarray(x[:batch]), seconds, warmup, repeat)
                    median = statistics.median(runs)
                    row = BenchRow(
                        backend,
                        precision,
                        batch,
                        batch / median,
                        1000 * median,
                        len(runs),
                        rt.describe(),
                        _gate(ref, precision),
                    )
                    report.rows.append(row)
                    log(f"{backend:12s} {precision:5s} batch {batch:3d}: {row.cells_per_s:8.1f} cells/s")
        except LeukedgeError as exc:  # one backend failing (e.g. no GPU) must not lose the others' rows
            report.skipped.append({"backend": backend, "precision": precision, "reason": exc.message})
    report.machine["load_average_after"] = _load()
    return report


def _check_arguments(backends: Sequence[str], batch_sizes: Sequence[int], repeat: int) -> None:
    if repeat < 1:
        raise InvalidInputError(f"{arg('repeat', repeat)} is below 1, expected an integer >= 1")
    bad = [b for b in batch_sizes if b < 1 or b > 1024]
    if bad or not batch_sizes:
        raise InvalidInputError(
            f"{arg('batch_sizes', list(batch_sizes))} is out of range, expected integers in [1, 1024]"
        )
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise InvalidInputError(f"{arg('backend', unknown[0])} is not a backend, expected one of {', '.join(BACKENDS)}")


def _timed_windows(rt: Any, xb: np.ndarray, seconds: float, warmup: float, repeat: int) -> List[float]:
    """Per-call times of the least disturbed of ``repeat`` timed windows (a shared machine)."""
    windows = [
        time_calls(lambda: rt.predict(xb), seconds=seconds, warmup=warmup if i == 0 else 0.0) for i in range(repeat)
    ]
    return min(windows, key=statistics.median)


def _gate(ref: ModelRef, precision: str) -> Optional[str]:
    if precision != "int8":
        return None
    from leukedge.verdict import verdict_of

    return verdict_of(ref.manifest.parity, "int8").status


def _describe(ref: ModelRef) -> Dict[str, Any]:
    p = ref.manifest.preprocessing
    return {
        "path": str(ref.bundle.root if ref.bundle is not None else ref.keras_path),
        "name": ref.manifest.name,
        "architecture": ref.manifest.architecture,
        "hash": ref.identity,
        "input": [p.input_height, p.input_width, 3],
    }


def format_table(report: BenchReport) -> str:
    m = report.machine
    lines = [
        f"Model {report.model['name']} ({report.model['hash']}), input {'×'.join(map(str, report.model['input']))}",
        f"Machine: {m['cpu']}, {m['cores']} cores, INT8: {', '.join(m['int8_instructions']) or 'none'}; "
        f"load average {m['load_average_before']} → {m.get('load_average_after')}",
        "",
        f"{'backend':12s} {'precision':9s} {'batch':>5s} {'cells/s':>9s} {'ms/batch':>9s} {'runs':>5s}  vs ORT FP32",
    ]
    for r in report.rows:
        base = report.row("onnxruntime", "fp32", r.batch)
        ratio = f"{r.cells_per_s / base.cells_per_s:.2f}×" if base else ""
        gate = f"  (gate {r.gate})" if r.gate and r.gate != "passed" else ""
        lines.append(
            f"{r.backend:12s} {r.precision:9s} {r.batch:5d} {r.cells_per_s:9.1f} {r.ms_per_batch:9.2f} {r.runs:5d}  {ratio}{gate}"
        )
    if report.preprocess:
        lines.append(
            f"\nPreprocessing (CPU reference, batch {report.preprocess['batch']}): "
            f"{report.preprocess['cells_per_s']:.0f} cells/s"
        )
    for s in report.skipped:
        lines.append(f"skipped {s['backend']} {s['precision']}: {s['reason']}")
    return "\n".join(lines)
