"""``leukedge convert``: a trained ``model.h5`` → a model bundle, with the acceptance gate.

The steps, each a module of its own: load the model safely
(``leukedge.modelfile``), export FP32 ONNX (``onnx_export``), check
ONNX against Keras, calibrate and quantize to Q/DQ INT8 on real cells
(``quantize``), run the INT8 gate on labelled cells (``gate``), keep the most
sensitive layers in float if it fails (``search``), write the bundle, and
optionally build a TensorRT engine (``trt_engine``).  All inference here goes
through the runtimes and the Classifier that serving uses.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from leukedge.bundle import MANIFEST_NAME, Bundle, write_bundle
from leukedge.converters import gate as gates
from leukedge.converters.inputs import ConvertPlan, plan_inputs, provenance, reference_cells
from leukedge.converters.labelled import CellSet
from leukedge.converters.quantize import (
    CALIB_BATCH,
    calibration_summary,
    make_reader,
    prepare,
    quantize,
    weighted_nodes,
)
from leukedge.converters.search import keep_in_float
from leukedge.errors import GateFailedError
from leukedge.manifest import Manifest
from leukedge.verdict import GateVerdict, verdict_of

FP32_FILE, INT8_FILE, CALIB_FILE = "model.onnx", "model.int8.onnx", "calibration.json"
KERAS_MAX_BYTES = 20 * 1024 * 1024  # the Keras model rides along in the bundle up to this size
SCORE_BATCH = 32
RANKING_CELLS = 128  # calibration cells used to rank layers when INT8 fails


@dataclass
class ConvertOptions:
    out: Optional[Path] = None
    calib_data: Optional[Path] = None
    calib_size: int = 500
    calib_method: str = "minmax"
    validate: Optional[Path] = None
    engine: bool = False
    precision: str = "int8"  # of the TensorRT engine
    max_batch: int = 32
    thresholds: gates.GateThresholds = field(default_factory=gates.GateThresholds)
    max_excluded: Optional[int] = None  # layers the search may keep in float (None: half)
    seed: int = 0


@dataclass
class ConvertResult:
    bundle: Bundle
    seconds: Dict[str, float]
    warnings: List[str]
    engine: Optional[Path] = None


def score(model: Any, backend: str, precision: str, crops: Sequence[np.ndarray]) -> np.ndarray:
    """p_all of each crop through the serving path: runtime + Classifier (preprocessing included)."""
    from leukedge.device.classifier import Classifier
    from leukedge.device.runtimes import open_runtime

    with open_runtime(model, backend=backend, precision=precision) as rt:
        clf = Classifier(rt)
        parts = [clf.p_all(list(crops[i : i + SCORE_BATCH])) for i in range(0, len(crops), SCORE_BATCH)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class _Timer:
    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}

    def __call__(self, name: str) -> _Timer:
        self._name, self._t0 = name, time.perf_counter()
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        self.seconds[self._name] = round(self.seconds.get(self._name, 0.0) + time.perf_counter() - self._t0, 3)


def convert_model(model_path: Path, options: ConvertOptions, *, echo: Callable[[str], None] = print) -> ConvertResult:
    """Convert, gate and write the bundle; raises GateFailedError (after writing it) if a gate fails."""
    t_start = time.perf_counter()
    plan = plan_inputs(Path(model_path), options, echo=echo)  # every cheap check before the slow work
    out, manifest = plan.out, plan.manifest
    timer, warnings = _Timer(), list(plan.warnings)

    from leukedge.converters.onnx_export import check_model_input, export_onnx
    from leukedge.modelfile import load_model

    with timer("load"):
        echo(f"Loading {model_path} (safe mode)")
        model, _ = load_model(model_path)
        check_model_input(model, manifest, Path(model_path))
    _clear_bundle(out)
    with timer("export"):
        echo(f"Exporting FP32 ONNX (opset {plan.opset}, dynamic batch) → {out / FP32_FILE}")
        export_onnx(model, manifest, out / FP32_FILE, opset=plan.opset)
    del model
    files = {"onnx_fp32": FP32_FILE, **_carry_keras(Path(model_path), out, warnings)}
    bundle = write_bundle(out, manifest, files)

    with timer("parity_fp32"):
        cells = reference_cells(plan)
        echo(f"Checking ONNX FP32 against Keras on {len(cells)} cells")
        p_keras = score(Path(model_path), "keras", "fp32", cells)
        fp32 = gates.fp32_parity(p_keras, score(bundle, "onnxruntime", "fp32", cells), options.thresholds)
    fp32.figures["source"] = plan.reference_source
    verdicts: Dict[str, GateVerdict] = {"fp32": fp32}

    calibration: Dict[str, Any] = {}
    if plan.calib is not None:
        work = out / ".work"
        work.mkdir(exist_ok=True)
        try:
            bundle, calibration, verdicts["int8"] = _int8(plan, plan.calib, files, work, timer, echo)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        files = {**files, "onnx_int8": INT8_FILE, "calibration": CALIB_FILE}
    else:
        verdicts["int8"] = GateVerdict.not_run("int8", "no --calib-data given: no INT8 model")
    parity = {name: v.to_dict() for name, v in verdicts.items()}

    timer.seconds["total"] = round(time.perf_counter() - t_start, 3)
    final = replace(
        manifest,
        parity=parity,
        calibration=calibration,
        provenance={**manifest.provenance, "conversion": provenance(plan, timer.seconds, warnings)},
    )
    bundle = write_bundle(out, final, files)
    result = ConvertResult(bundle=bundle, seconds=timer.seconds, warnings=warnings)
    _raise_if_failed(result)
    if options.engine:
        from leukedge.device.trt_engine import load_or_build_engine

        with timer("engine"):
            result.engine = load_or_build_engine(bundle, options.precision, options.max_batch, progress=True)
    return result


def _carry_keras(model_path: Path, out: Path, warnings: List[str]) -> Dict[str, str]:
    """Copy the Keras file into the bundle (the Keras row of bench, parity checks) unless it is too big."""
    if model_path.stat().st_size > KERAS_MAX_BYTES:
        warnings.append(f"{model_path} is over {KERAS_MAX_BYTES >> 20} MB; the bundle does not carry it (no Keras row)")
        return {}
    keras_name = "model" + model_path.suffix.lower()
    shutil.copyfile(model_path, out / keras_name)
    return {"keras": keras_name}


def _int8(
    plan: ConvertPlan,
    calib: CellSet,
    files: Dict[str, str],
    work: Path,
    timer: _Timer,
    echo: Callable[[str], None],
) -> tuple:
    """Calibrate, quantize and gate; returns (bundle, calibration section, the INT8 GateVerdict)."""
    options, manifest, out = plan.options, plan.manifest, plan.out
    spec = manifest.preprocessing
    cache = out / CALIB_FILE
    prepared = work / "model.prep.onnx"
    int8_files = {**files, "onnx_int8": INT8_FILE}

    def build(excluded: Sequence[str]) -> Bundle:
        quantize(prepared, out / INT8_FILE, reader=reader, method=options.calib_method, cache=cache, exclude=excluded)
        return write_bundle(out, manifest, int8_files)

    with timer("calibrate_quantize"):
        echo(
            f"Calibrating ({options.calib_method}) on {len(calib)} cells from {options.calib_data}; "
            "quantizing to INT8 Q/DQ (symmetric activations, per-channel weights)"
        )
        prepare(out / FP32_FILE, prepared)
        reader = make_reader(calib.crops, spec, manifest.input_name)
        candidate = build([])
    calibration = _calibration_section(plan, calib, cache)
    if plan.validate is None:
        why = "no --validate data: INT8 not gated, so not used by 'auto'"
        return candidate, calibration, GateVerdict.not_run("int8", why)

    val = plan.validate
    y = val.y()
    threshold = manifest.decision.threshold
    with timer("gate"):
        echo(f"INT8 gate on {len(val)} labelled cells from {options.validate}")
        p_ref = score(candidate, "onnxruntime", "fp32", val.crops)

        def gate(b: Bundle) -> tuple:
            m = gates.compare(y, p_ref, score(b, "onnxruntime", "int8", val.crops), threshold)
            return m, gates.judge(m, options.thresholds)

        metrics, reasons = gate(candidate)
    verdict = gates.int8_verdict(metrics, options.thresholds, threshold, calibration_method=options.calib_method)
    if reasons:
        echo("INT8 fails the gate (" + "; ".join(reasons) + "): looking for layers to keep in float")
        ranking_crops = calib.crops[:RANKING_CELLS]
        with timer("search"):
            p_rank = score(candidate, "onnxruntime", "fp32", ranking_crops)

            def drift(b: Bundle) -> float:
                return float(np.mean(np.abs(score(b, "onnxruntime", "int8", ranking_crops) - p_rank)))

            found = keep_in_float(
                weighted_nodes(prepared), build, drift, gate, max_excluded=options.max_excluded, log=echo
            )
        candidate, verdict = _after_search(found, candidate, verdict, build)
    return candidate, calibration, verdict


def _calibration_section(plan: ConvertPlan, calib: CellSet, cache: Path) -> Dict[str, Any]:
    """The manifest's ``calibration``: how the INT8 model was calibrated, and on what."""
    options = plan.options
    return {
        "method": options.calib_method,
        "batch": CALIB_BATCH,
        "images": len(calib),
        "per_class": calib.counts(),
        "selection": f"as even over the classes as they allow, subjects in turn, seed {options.seed}",
        "preprocessing": "leukedge.preprocess.preprocess with this manifest's preprocessing",
        "statistics": CALIB_FILE,
        **calibration_summary(cache, plan.manifest.input_name),
        "scheme": {
            "format": "QDQ (QuantizeLinear/DequantizeLinear)",
            "activations": "int8, symmetric (zero point 0), per tensor",
            "weights": "int8, symmetric, per channel",
        },
    }


def _after_search(found: Any, candidate: Bundle, failed: GateVerdict, build: Callable[..., Bundle]) -> tuple:
    """(bundle, verdict) once the search for layers to keep in float has ended, passed or not."""
    figures = dict(failed.figures)
    figures.update(
        sensitivity=[{"node": n, "mean_abs_delta_p_in_float": d} for n, d in found.ranking],
        attempts=found.attempts,
    )
    if found.passed:
        figures.update(metrics=found.metrics, excluded_nodes=found.excluded)
        return found.handle, GateVerdict("int8", True, (), figures)
    if found.attempts:  # the file on disk has layers in float: ship the plain INT8, marked as failed
        candidate = build([])
    return candidate, GateVerdict("int8", False, (*failed.reasons, found.reasons[-1]), figures)


def _raise_if_failed(result: ConvertResult) -> None:
    fp32 = verdict_of(result.bundle.manifest.parity, "fp32")
    int8 = verdict_of(result.bundle.manifest.parity, "int8")
    if not fp32.passed:
        raise GateFailedError(
            f"ONNX FP32 differs from Keras by max |Δp| = {fp32['max_abs_delta_p']:.2e} "
            f"(limit {fp32['limit']:.0e}); the conversion is not faithful",
            hint="report this with the model file; the bundle in "
            f"{result.bundle.root} is marked as failed and must not be deployed",
        )
    if int8.passed is False:
        raise GateFailedError(
            "INT8 fails the acceptance gate: " + "; ".join(int8.reasons),
            hint="calibrate on more, and more representative, cells (--calib-data, --calib-size, "
            "--calib-method percentile|entropy); the bundle's FP32 model is usable ('--precision fp32'), "
            "and 'auto' will not pick its INT8 model",
        )


def _clear_bundle(out: Path) -> None:
    """Remove what an earlier conversion left in ``out`` (engines are keyed and stay valid)."""
    for name in (MANIFEST_NAME, FP32_FILE, INT8_FILE, CALIB_FILE, "model.h5", "model.keras"):
        (out / name).unlink(missing_ok=True)


__all__ = ["ConvertOptions", "ConvertResult", "Manifest", "convert_model", "score"]
