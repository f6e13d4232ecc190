"""This CPU's INT8 and FP32 peak in ONNX Runtime, and how close a bundle's models come to it.

The peak is measured, not looked up: a chain of eight large INT8 MatMuls and a
chain of eight INT8 3×3 convolutions (256 channels, 32×32) in the same Q/DQ
form as ``model.int8.onnx`` (ONNX Runtime fuses it into its integer kernels,
AVX-512 VNNI where the CPU has it), against the same chains in FP32.  With ``--model`` the script then counts the
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


def _model(kind: str, int8: bool, size: dict, path: Path, depth: int = 8) -> tuple:
    """A chain of ``depth`` equal layers (MatMul or 3×3 Conv); returns (input shape, MACs per run).

    Between INT8 layers the tensors stay Q/DQ, as in ``model.int8.onnx``, so ONNX Runtime runs
    the chain on integer kernels end to end and the float conversions at both ends are amortised.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes: list = []
    inits: list = []
    if kind == "matmul":
        m, k = size["m"], size["k"]
        x_shape, macs, axis = [m, k], depth * m * k * k, 1
        weight_shape, op, attrs = (k, k), "MatMul", {}
    else:
        b, c, hw = size["batch"], size["channels"], size["hw"]
        x_shape, macs, axis = [b, c, hw, hw], depth * b * c * c * 9 * hw * hw, 0
        weight_shape, op, attrs = (c, c, 3, 3), "Conv", {"pads": [1, 1, 1, 1]}
    y_shape = x_shape
    fan_in = int(np.prod(weight_shape)) // weight_shape[axis]
    t = "x"
    for i in range(depth):
        w = (rng.standard_normal(weight_shape) / np.sqrt(fan_in)).astype(np.float32)
        if int8:
            t = _qdq(t, 0.05, f"a{i}", nodes, inits)
            wn = _weight(w, axis, f"w{i}", nodes, inits)
        else:
            inits.append(numpy_helper.from_array(w, f"w{i}"))
            wn = f"w{i}"
        nodes.append(helper.make_node(op, [t, wn], [f"y{i}"], **attrs))
        t = f"y{i}"
    out = _qdq(t, 0.05, "yout", nodes, inits) if int8 else t
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


SHAPES = {
    "matmul": {"m": 512, "k": 1024},
    "conv": {"batch": 8, "channels": 256, "hw": 32},
    "conv_wide": {"batch": 4, "channels": 64, "hw": 128},
}


def _rate(path: Path, shape: list, macs: int, seconds: float) -> float:
    import onnxruntime as ort

    from leukedge.device.bench import time_calls

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    times = time_calls(lambda: sess.run(None, {"x": x}), seconds=seconds, warmup=0.5)
    return 2 * macs / statistics.median(times) / 1e9


def measure_peak(seconds: float, repeat: int) -> dict:
    """GOPS of each chain in FP32 and INT8: the best of ``repeat`` timed runs (the least disturbed)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in SHAPES.items():
            for precision in ("fp32", "int8"):
                path = Path(tmp) / f"{name}-{precision}.onnx"
                shape, macs = _model(name.split("_")[0], precision == "int8", size, path)
                rates = [_rate(path, shape, macs, seconds) for _ in range(repeat)]
                out[f"{name}_{precision}"] = {
                    "shape": size,
                    "gops": round(max(rates), 1),
                    "all": [round(r, 1) for r in rates],
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
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per measurement; the best is kept")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    from leukedge.device.bench import machine_info, run_bench

    result: dict = {"machine": machine_info(), "peak": measure_peak(args.seconds, args.repeat)}
    peak = result["peak"]
    for name in SHAPES:
        fp, i8 = peak[name + "_fp32"]["gops"], peak[name + "_int8"]["gops"]
        print(f"{name:10s} chain: FP32 {fp:7.1f} GFLOP/s   INT8 {i8:7.1f} GOPS   ({i8 / fp:.2f}×)")
    best = {p: max(peak[f"{n}_{p}"]["gops"] for n in SHAPES) for p in ("fp32", "int8")}
    # One 512-bit VPDPBUSD does 64 INT8 multiply-accumulates where a 512-bit FMA does 16 FP32 ones, at
    # the same throughput on Zen 4 and on Intel's AVX-512 cores: the INT8 roofline is 4× the FP32 one.
    roofline = 4 * best["fp32"]
    result["roofline"] = {
        "fp32_best_gflops": best["fp32"],
        "int8_best_gops": best["int8"],
        "int8_roofline_gops": roofline,
    }
    print(
        f"INT8 roofline = 4 × best FP32 ({best['fp32']:.1f}) = {roofline:.0f} GOPS; best INT8 chain {best['int8']:.0f} GOPS"
    )
    if args.model:
        from leukedge.bundle import Bundle

        bundle = Bundle.load(args.model)
        macs = model_macs(bundle.path_of("onnx_fp32"))
        result["model"] = {"path": str(bundle.root), "macs_per_cell": macs, "rows": []}
        runs = [
            run_bench(bundle, backends=["onnxruntime"], batch_sizes=[1, 32], seconds=args.seconds)
            for _ in range(args.repeat)
        ]
        for row in runs[0].rows:
            rates = [r.row(row.backend, row.precision, row.batch).cells_per_s for r in runs]  # type: ignore[union-attr]
            cells = max(rates)
            gops = 2 * macs * cells / 1e9
            ref = roofline if row.precision == "int8" else best["fp32"]
            result["model"]["rows"].append(
                {
                    "precision": row.precision,
                    "batch": row.batch,
                    "cells_per_s": round(cells, 1),
                    "all": [round(r, 1) for r in rates],
                    "gops": round(gops, 1),
                    "share": round(gops / ref, 3),
                }
            )
            what = "the INT8 roofline" if row.precision == "int8" else "the best FP32 chain"
            print(
                f"model {row.precision} batch {row.batch:2d}: {cells:7.1f} cells/s × {2 * macs / 1e9:.2f} GOP/cell = "
                f"{gops:6.1f} GOPS = {100 * gops / ref:.0f}% of {what}"
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
