"""Helpers for the device tests: a tiny real ONNX bundle, and the CUDA LoG kernel run on the CPU.

``tiny_bundle``: NHWC float32 input named as the manifest says → strided conv →
ReLU → global average pool → dense → softmax over (hem, all), built with
onnx.helper in milliseconds.  The weights are seeded, so p_all depends on the
pixels but means nothing medically; tests check the plumbing, not accuracy.

``build_kernel_on_cpu`` / ``enhance_on_cpu``: the kernel text of
leukedge.device.cuda_log compiled as plain C by gcc and called through ctypes,
looping over the thread index where CUDA would launch a grid; the indexing,
borders, weights and layout are tested here, and the ``gpu`` tests add nvcc.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.util
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np

from leukedge.bundle import Bundle, write_bundle
from leukedge.device.cuda_log import kernel_source, output_shape
from leukedge.device.runtimes.base import Runtime
from leukedge.manifest import Manifest, Preprocessing

# Small frames keep segmentation cheap on a 2-core CPU; the geometry is the real one scaled down.
SMALL_SYNTHETIC = "synthetic://?width=800&height=600&cells=3&pool=2"


def tiny_onnx(
    path: Path, *, size: int = 128, input_name: str = "input", output_name: str = "predictions", seed: int = 0
) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    conv_w = rng.normal(0, 0.05, (4, 3, 8, 8)).astype(np.float32)
    dense_w = rng.normal(0, 2.0, (4, 2)).astype(np.float32)
    dense_b = np.array([0.0, -0.2], np.float32)
    nodes = [
        helper.make_node("Transpose", [input_name], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "conv_w"], ["conv"], strides=[8, 8]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [output_name], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", size, size, 3])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 2])],
        initializer=[
            numpy_helper.from_array(conv_w, "conv_w"),
            numpy_helper.from_array(dense_w, "dense_w"),
            numpy_helper.from_array(dense_b, "dense_b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="leukedge-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_bundle(root: Path, *, model_size: int = 128, manifest_size: int = 128, **kw: object) -> Bundle:
    """A bundle folder with model.onnx; ``model_size != manifest_size`` makes one that does not match."""
    root.mkdir(parents=True, exist_ok=True)
    tiny_onnx(root / "model.onnx", size=model_size, **kw)  # type: ignore[arg-type]
    pre = Preprocessing(input_height=manifest_size, input_width=manifest_size)
    manifest = replace(Manifest(), name="tiny-test-model", preprocessing=pre, provenance={"made_by": "tests"})
    return write_bundle(root, manifest, {"onnx_fp32": "model.onnx"})


HARNESS = r"""
void run(const unsigned char *in, float *tmp, float *smooth, float *out, int n, int h, int w,
         float alpha, float scale, float offset) {
    int total = n * h * w * 3;
    for (int i = 0; i < total; ++i) lk_rows(i, in, tmp, n, h, w);
    for (int i = 0; i < total; ++i) lk_cols(i, tmp, smooth, n, h, w);
    for (int i = 0; i < total; ++i) lk_finish(i, in, smooth, out, n, h, w, alpha, scale, offset);
}
"""


def c_compiler() -> str | None:
    return shutil.which("gcc") or shutil.which("cc")


def build_kernel_on_cpu(spec: Preprocessing, workdir: Path) -> ctypes.CDLL:
    # A new file name per build: dlopen() returns the already-loaded library for a path it has seen.
    tag = hashlib.sha256(kernel_source(spec).encode()).hexdigest()[:16]
    src = workdir / f"lk_{tag}.c"
    lib = workdir / f"lk_{tag}.so"
    src.write_text(kernel_source(spec) + HARNESS)
    cc = c_compiler()
    assert cc is not None
    # -ffp-contract=off: no fused multiply-add, as nvcc --fmad=false
    subprocess.run([cc, "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(lib), str(src), "-lm"], check=True)
    dll = ctypes.CDLL(str(lib))
    f = ctypes.c_float
    p = ctypes.c_void_p
    dll.run.argtypes = [p, p, p, p, ctypes.c_int, ctypes.c_int, ctypes.c_int, f, f, f]
    return dll


def enhance_on_cpu(dll: ctypes.CDLL, batch: np.ndarray, spec: Preprocessing) -> np.ndarray:
    batch = np.ascontiguousarray(batch, dtype=np.uint8)
    n, h, w, _ = batch.shape
    tmp = np.zeros(batch.shape, np.float32)
    smooth = np.zeros(batch.shape, np.float32)
    out = np.zeros(output_shape(n, spec), np.float32)
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    dll.run(ptr(batch), ptr(tmp), ptr(smooth), ptr(out), n, h, w, spec.log.alpha, spec.scale, spec.offset)
    return out


class ProjectionRuntime(Runtime):
    """A model in numpy: a fixed random projection of every input value to two logits, softmaxed.

    Every pixel of the preprocessed input moves p_all, so it shows any difference
    between two preprocessing paths; used where the ONNX tooling may be absent (GPU machine).
    """

    name = "numpy-projection"

    def __init__(self, manifest: Manifest | None = None, seed: int = 0) -> None:
        super().__init__(manifest or Manifest(), "fp32")
        self.seed = seed
        self.max_batch = 64

    def _load(self) -> None:
        size = int(np.prod(self.input_shape))
        self.w = np.random.default_rng(self.seed).normal(0, 1 / np.sqrt(size), (size, 2)).astype(np.float32)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        logits = batch.reshape(len(batch), -1) @ self.w * 8.0
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


if __name__ == "__main__":  # python -m tests.device.device_helpers BUNDLE_DIR (used by tools/gpu_check.sh)
    import sys

    made = tiny_bundle(Path(sys.argv[1]))
    print(f"tiny test bundle: {made}")


@functools.lru_cache(maxsize=None)
def score_bundles() -> ModuleType:
    """``benchmarks/score_bundle.py`` (the small bundles the scoring tests and benchmark use), as a module."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "score_bundle.py"
    spec = importlib.util.spec_from_file_location("score_bundle", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
