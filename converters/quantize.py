"""FP32 ONNX → INT8 ONNX with explicit Q/DQ, calibrated on real cells.

The form is the one TensorRT 8.6 to 11 builds INT8 engines from and ONNX
Runtime runs on CPUs: QuantizeLinear/DequantizeLinear pairs, symmetric INT8
activations (zero point 0), per-channel symmetric INT8 weights.  Calibration
runs once; its tensor ranges are kept (``calibration.json`` in the bundle) and
reused when layers are kept in float after a failed gate.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

from leukedge.errors import BundleError, MissingDependencyError
from leukedge.manifest import Preprocessing
from leukedge.preprocess import preprocess

CALIB_METHODS = ("minmax", "percentile", "entropy")
CALIB_BATCH = 32  # images per calibration batch; fewer images than this is refused
PERCENTILE = 99.999
# Layers with weights: the candidates for keeping in float, and what TensorRT runs in INT8.
WEIGHTED_OPS = ("Conv", "MatMul", "Gemm")
QUANTIZED_OPS = (*WEIGHTED_OPS, "MaxPool", "AveragePool", "Relu", "Transpose", "Reshape", "Squeeze", "Flatten")


def _quantization() -> Any:
    from leukedge.extras import require

    require("onnxruntime")
    import onnxruntime.quantization as q

    if "calibration_cache_path" not in inspect.signature(q.quantize_static).parameters:
        import onnxruntime

        raise MissingDependencyError(
            f"onnxruntime {onnxruntime.__version__} cannot save and reuse calibration ranges "
            "(quantize_static has no calibration_cache_path)",
            hint="pip install -U 'onnxruntime>=1.32'",
        )
    return q


def prepare(fp32: Path, out: Path) -> Path:
    """ONNX Runtime's quantization pre-processing: shape inference (symbolic too) and folding."""
    q = _quantization()
    try:
        q.quant_pre_process(str(fp32), str(out), skip_symbolic_shape=False)
    except ImportError as exc:  # symbolic shape inference needs sympy
        raise MissingDependencyError(
            f"ONNX Runtime's quantization pre-processing needs {exc.name or 'sympy'}", hint="pip install sympy"
        ) from exc
    return out


def make_reader(crops: Sequence[np.ndarray], spec: Preprocessing, input_name: str, *, batch: int = CALIB_BATCH) -> Any:
    """An ONNX Runtime CalibrationDataReader over cell crops, preprocessed by the one reference."""
    from onnxruntime.quantization import CalibrationDataReader

    class _CellReader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches = self._iter()

        def _iter(self) -> Iterator[Dict[str, np.ndarray]]:
            for i in range(0, len(crops), batch):
                yield {input_name: preprocess(list(crops[i : i + batch]), spec)}

        def get_next(self) -> Optional[Dict[str, np.ndarray]]:
            return next(self._batches, None)

        def rewind(self) -> None:
            self._batches = self._iter()

        def __len__(self) -> int:
            return (len(crops) + batch - 1) // batch

    return _CellReader()


def weighted_nodes(model_path: Path) -> List[str]:
    """Names of the nodes with weights (Conv, MatMul, Gemm), in graph order."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in WEIGHTED_OPS]


def quantize(
    prepared: Path,
    out: Path,
    *,
    reader: Any,
    method: str,
    cache: Path,
    exclude: Sequence[str] = (),
) -> Path:
    """Write the Q/DQ INT8 model; calibrates with ``reader`` unless ``cache`` already holds the ranges."""
    if method not in CALIB_METHODS:
        raise BundleError(f"--calib-method is {method!r}, expected one of {', '.join(CALIB_METHODS)}")
    q = _quantization()
    methods = {
        "minmax": q.CalibrationMethod.MinMax,
        "percentile": q.CalibrationMethod.Percentile,
        "entropy": q.CalibrationMethod.Entropy,
    }
    extra = {
        "ActivationSymmetric": True,  # zero point 0: what TensorRT requires
        "WeightSymmetric": True,
        # Biases stay float: TensorRT refuses an INT32 DequantizeLinear ("only activation types allowed"),
        # and ONNX Runtime (>= 1.21) quantizes them itself at load time to fuse its integer kernels.
        "QuantizeBias": False,
        "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},  # Dense weights are K×N: one scale per output
        "CalibPercentile": PERCENTILE,
    }
    fresh = not cache.is_file()
    q.quantize_static(
        str(prepared),
        str(out),
        calibration_data_reader=None if cache.is_file() else reader,
        quant_format=q.QuantFormat.QDQ,
        op_types_to_quantize=list(QUANTIZED_OPS),
        per_channel=True,
        reduce_range=False,
        activation_type=q.QuantType.QInt8,
        weight_type=q.QuantType.QInt8,
        nodes_to_exclude=list(exclude),
        calibrate_method=methods[method],
        extra_options=extra,
        calibration_cache_path=str(cache),
    )
    if fresh:  # ORT writes tensors in set order; sorted, the same ranges give the same file
        cache.write_text(json.dumps(json.loads(cache.read_text(encoding="utf-8")), sort_keys=True), encoding="utf-8")
    if exclude:
        float_inputs(out, exclude)
    return out


# Ops ONNX Runtime moves a DequantizeLinear across (its QDQ propagation), value-preserving.
_PROPAGATING_OPS = ("MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice")


def float_inputs(model_path: Path, nodes: Sequence[str]) -> None:
    """Feed each of ``nodes`` float tensors, not Q/DQ copies, so that it really runs in float.

    ``nodes_to_exclude`` leaves a node's weights in float but may keep a Q/DQ pair on its
    input (shared with other consumers).  ONNX Runtime (>= 1.21) then quantizes the float
    weights itself at load time (its WeightBiasQuantization pass, which looks for a
    DequantizeLinear input after moving DequantizeLinear across MaxPool, Reshape,
    Transpose, …), undoing the exclusion.  Walking up through those ops and bypassing each
    Q/DQ pair makes ONNX Runtime and TensorRT both run the layer in float.
    """
    import onnx

    model = onnx.load(str(model_path))
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.name not in nodes or not node.input:
            continue
        consumer = node
        while True:
            src = producer.get(consumer.input[0])
            if src is not None and src.op_type == "DequantizeLinear":
                q = producer.get(src.input[0])
                if q is None or q.op_type != "QuantizeLinear":
                    break
                consumer.input[0] = q.input[0]
            elif src is not None and src.op_type in _PROPAGATING_OPS:
                consumer = src
            else:
                break
    _prune_unused(graph)
    onnx.save_model(model, str(model_path))


def _prune_unused(graph: Any) -> None:
    """Drop nodes whose outputs nothing reads (Q/DQ pairs left behind by ``float_inputs``)."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            return
        for n in dead:
            graph.node.remove(n)


def calibration_summary(cache: Path, input_name: str) -> Dict[str, Any]:
    """What the manifest says about the calibration ranges (the full table stays in the cache file)."""
    q = _quantization()
    cache.chmod(0o644)  # ONNX Runtime writes it private; it ships in the bundle
    tensors = q.load_tensors_data(str(cache)).data
    entry = tensors.get(input_name)
    low_high = [float(np.ravel(v)[0]) for v in entry.range_value] if entry is not None else None
    return {"tensors": len(tensors), "input_range": low_high}
