"""This CPU's INT8 and FP32 peak in ONNX Runtime, and how close a bundle's models come to it.

The peak is measured, not looked up: a large Q/DQ MatMul (the same Q/DQ form
as ``model.int8.onnx``, which ONNX Runtime fuses into its integer GEMM, using
AVX-512 VNNI where the CPU has it) and a large Q/DQ 3×3 convolution, against
the same operations in FP32.  With ``--model`` the script then counts the
model's multiply-accumulates from its ONNX graph, measures it at batch 32 with
``leukedge.device.bench`` and reports the model's effective GOPS as a share of
the peak.

    python benchmarks/int8_peak.py --model sdk/models/reference --json out.json

Run it on a quiet machine (other processes lower every number); the load
average before and after is printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _qdq(x: str, scale: float, name: str, nodes: list, inits: list) -> str:
    from onnx import helper, numpy_helper

    inits += [
        numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"),
        numpy_helper.from_array(np.array(0, np.int8), f"{name}_z"),
    ]
    nodes += [
        helper.make_node("QuantizeLinear", [x, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
        helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_dq"]),
    ]
    return f"{name}_dq"


def _weight(w: np.ndarray, axis: int, name: str, nodes: list, inits: list) -> str:
    """Per-channel symmetric INT8 weight behind a DequantizeLinear, as the converter writes it."""
    from onnx import helper, numpy_helper

    reduce = tuple(i for i in range(w.ndim) if i != axis)
    scale = (np.abs(w).max(axis=reduce) / 127.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    inits += [
        numpy_helper.from_array(q, f"{name}_q"),
        numpy_helper.from_array(scale, f"{name}_s"),
        numpy_helper.from_array(np.zeros_like(scale, np.int8), f"{name}_z"),
    ]
    nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [name], axis=axis))
    return name


def _model(kind: str, int8: bool, size: dict, path: Path) -> tuple:
    """A one-operator model; returns (input shape, multiply-accumulates per run)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes: list = []
    inits: list = []
    if kind == "matmul":
        m, k, n = size["m"], size["k"], size["n"]
        w = rng.standard_normal((k, n)).astype(np.float32) * 0.05
        x_shape, y_shape, macs = [m, k], [m, n], m * k * n
        x = _qdq("x", 0.05, "xin", nodes, inits) if int8 else "x"
        wn = _weight(w, 1, "w", nodes, inits) if int8 else "w"
        if not int8:
            inits.append(numpy_helper.from_array(w, "w"))
        nodes.append(helper.make_node("MatMul", [x, wn], ["y0"]))
    else:
        b, c, hw = size["batch"], size["channels"], size["hw"]
        w = rng.standard_normal((c, c, 3, 3)).astype(np.float32) * 0.05
        x_shape, y_shape, macs = [b, c, hw, hw], [b, c, hw, hw], b * c * c * 9 * hw * hw
        x = _qdq("x", 0.05, "xin", nodes, inits) if int8 else "x"
        wn = _weight(w, 0, "w", nodes, inits) if int8 else "w"
        if not int8:
            inits.append(numpy_helper.from_array(w, "w"))
        nodes.append(helper.make_node("Conv", [x, wn], ["y0"], pads=[1, 1, 1, 1]))
    out = _qdq("y0", 0.5, "yout", nodes, inits) if int8 else "y0"
    nodes.append(helper.make_node("Identity", [out], ["y"]))
    graph = helper.make_graph(
        nodes,
        kind,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return x_shape, macs


def measure_peak(seconds: float) -> dict:
    import onnxruntime as ort

    sizes = {"matmul": {"m": 1024, "k": 2048, "n": 2048}, "conv": {"batch": 8, "channels": 256, "hw": 32}}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, size in sizes.items():
            for int8 in (False, True):
                path = Path(tmp) / f"{kind}-{int8}.onnx"
                shape, macs = _model(kind, int8, size, path)
                opts = ort.SessionOptions()
                opts.log_severity_level = 3
                sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
                for _ in range(3):
                    sess.run(None, {"x": x})
                times, t_end = [], time.perf_counter() + seconds
                while len(times) < 5 or time.perf_counter() < t_end:
                    t0 = time.perf_counter()
                    sess.run(None, {"x": x})
                    times.append(time.perf_counter() - t0)
                gops = 2 * macs / statistics.median(times) / 1e9
                out[f"{kind}_{'int8' if int8 else 'fp32'}"] = {
                    "shape": size,
                    "gops": round(gops, 1),
                    "runs": len(times),
                }
    return out


def model_macs(onnx_path: Path) -> int:
    """Multiply-accumulates per cell of a model's Conv and MatMul/Gemm nodes (shape inference)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    shapes = {
        v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim]
        for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)
    }
    weights = {t.name: numpy_helper.to_array(t).shape for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[1] in weights:
            out = shapes.get(node.output[0])
            c_out, c_in, kh, kw = weights[node.input[1]]
            total += int(np.prod(out[2:])) * c_out * c_in * kh * kw if out else 0
        elif node.op_type in ("MatMul", "Gemm") and node.input[1] in weights:
            k, n = weights[node.input[1]][-2:]
            total += k * n
    return total


def main(argv: list) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a bundle folder: compare its ORT FP32/INT8 throughput with the peak")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    from leukedge.device.bench import machine_info, run_bench

    result = {"machine": machine_info(), "peak": measure_peak(args.seconds)}
    peak = result["peak"]
    for kind in ("matmul", "conv"):
        print(
            f"peak {kind:6s}: FP32 {peak[kind + '_fp32']['gops']:7.1f} GFLOP/s   INT8 {peak[kind + '_int8']['gops']:7.1f} GOPS"
            f"   ({peak[kind + '_int8']['gops'] / peak[kind + '_fp32']['gops']:.2f}×)"
        )
    if args.model:
        from leukedge.bundle import Bundle

        bundle = Bundle.load(args.model)
        macs = model_macs(bundle.path_of("onnx_fp32"))
        report = run_bench(bundle, backends=["onnxruntime"], batch_sizes=[32], seconds=args.seconds)
        result["model"] = {"path": str(bundle.root), "macs_per_cell": macs, "rows": []}
        best = {p: max(peak[f"matmul_{p}"]["gops"], peak[f"conv_{p}"]["gops"]) for p in ("fp32", "int8")}
        for row in report.rows:
            gops = 2 * macs * row.cells_per_s / 1e9
            share = gops / best[row.precision]
            result["model"]["rows"].append(
                {
                    "precision": row.precision,
                    "batch": row.batch,
                    "cells_per_s": round(row.cells_per_s, 1),
                    "gops": round(gops, 1),
                    "share_of_peak": round(share, 3),
                }
            )
            print(
                f"model {row.precision}: {row.cells_per_s:7.1f} cells/s × {2 * macs / 1e9:.2f} GOP/cell = "
                f"{gops:6.1f} GOPS = {100 * share:.0f}% of the measured {row.precision.upper()} peak"
            )
    result["machine"]["load_average_after"] = list(os.getloadavg())
    print(
        f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"load {result['machine']['load_average_before']} → {[round(x, 2) for x in os.getloadavg()]}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
