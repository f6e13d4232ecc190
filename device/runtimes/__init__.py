"""Inference runtimes behind one interface, chosen by name.

``open_runtime(model, backend=..., precision=...)`` resolves a model
reference (a bundle folder, ``"reference"``, or a Keras ``.h5``/``.keras``
file) and returns an unopened :class:`Runtime`.  Backends are looked up in
``BACKENDS``; each is imported only when chosen.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Union

from leukedge.arguments import arg
from leukedge.bundle import Bundle
from leukedge.device.runtimes.base import Runtime
from leukedge.errors import InvalidInputError, MissingDependencyError
from leukedge.extras import has
from leukedge.manifest import Manifest
from leukedge.verdict import int8_passed

KERAS_SUFFIXES = (".h5", ".keras")
PRECISIONS = ("auto", "fp32", "fp16", "int8")


@dataclass(frozen=True)
class ModelRef:
    """What a ``--model`` argument points at."""

    manifest: Manifest
    bundle: Optional[Bundle] = None
    keras_path: Optional[Path] = None

    @property
    def identity(self) -> str:
        """Short hash naming the model in results files."""
        if self.bundle is not None:
            return self.bundle.short_hash
        from leukedge.bundle import sha256_file

        assert self.keras_path is not None
        return sha256_file(self.keras_path)[:12]


def resolve_model(model: Union[str, os.PathLike[str], Bundle, None]) -> ModelRef:
    if isinstance(model, Bundle):
        return ModelRef(model.manifest, bundle=model)
    if model is not None and Path(model).suffix.lower() in KERAS_SUFFIXES:
        from leukedge.modelfile import read_manifest

        path = Path(model)
        return ModelRef(read_manifest(path), keras_path=path)
    b = Bundle.load(model)
    return ModelRef(b.manifest, bundle=b)


def _make_onnx(ref: ModelRef, precision: str, **kw: object) -> Runtime:
    from leukedge.device.runtimes.onnx_runtime import OnnxRuntime

    if ref.bundle is None:
        raise InvalidInputError(
            f"{arg('backend', 'onnxruntime')} needs a model bundle, not a Keras file",
            hint="convert it first: leukedge convert model.h5 --out BUNDLE_DIR",
        )
    return OnnxRuntime(ref.bundle, precision, **kw)  # type: ignore[arg-type]


def _make_keras(ref: ModelRef, precision: str, **kw: object) -> Runtime:
    from leukedge.device.runtimes.keras_runtime import KerasRuntime

    path = ref.keras_path
    if path is None and ref.bundle is not None and ref.bundle.has("keras"):
        path = ref.bundle.path_of("keras")
    if path is None:
        raise InvalidInputError(
            f"{arg('backend', 'keras')} needs the Keras model: pass the .h5 file, or a bundle that includes it",
            hint="leukedge convert keeps model.h5 in the bundle; or use --backend onnxruntime",
        )
    return KerasRuntime(path, precision)


def _make_tensorrt(ref: ModelRef, precision: str, **kw: object) -> Runtime:
    module = importlib.import_module("leukedge.device.runtimes.tensorrt_runtime")
    if ref.bundle is None:
        raise InvalidInputError(
            f"{arg('backend', 'tensorrt')} needs a model bundle", hint="leukedge convert model.h5 --out BUNDLE_DIR"
        )
    return module.TensorRTRuntime(ref.bundle, precision, **kw)  # type: ignore[no-any-return]


BACKENDS: Dict[str, Callable[..., Runtime]] = {
    "onnxruntime": _make_onnx,
    "keras": _make_keras,
    "tensorrt": _make_tensorrt,
}


def choose_backend(ref: ModelRef, backend: str) -> str:
    """``auto``: Keras for a Keras file; TensorRT where TensorRT and pycuda import; else ONNX Runtime."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise InvalidInputError(
                f"{arg('backend', backend)} is not a backend, expected one of auto, {', '.join(BACKENDS)}"
            )
        return backend
    if ref.bundle is None:
        return "keras"
    if has("tensorrt") and has("pycuda"):
        return "tensorrt"
    return "onnxruntime"


def choose_precision(ref: ModelRef, backend: str, precision: str) -> str:
    """``auto``: INT8 where the bundle has an INT8 model that passed its acceptance gate, else FP32."""
    if precision not in PRECISIONS:
        raise InvalidInputError(
            f"{arg('precision', precision)} is not a precision, expected one of {', '.join(PRECISIONS)}"
        )
    if precision != "auto":
        return precision
    if backend == "keras" or ref.bundle is None:
        return "fp32"
    if ref.bundle.has("onnx_int8") and int8_passed(ref.manifest):
        return "int8"
    return "fp16" if backend == "tensorrt" else "fp32"


def open_runtime(
    model: Union[str, os.PathLike[str], Bundle, ModelRef, None],
    *,
    backend: str = "auto",
    precision: str = "auto",
    **options: object,
) -> Runtime:
    """An unopened runtime for ``model``; open it with ``with`` or ``.open()``."""
    ref = model if isinstance(model, ModelRef) else resolve_model(model)
    name = choose_backend(ref, backend)
    prec = choose_precision(ref, name, precision)
    try:
        return BACKENDS[name](ref, prec, **options)
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(f"{arg('backend', name)} is not available: {exc}") from exc


__all__ = ["BACKENDS", "ModelRef", "Runtime", "choose_backend", "choose_precision", "open_runtime", "resolve_model"]
