"""``has_x()`` beside ``require_x()`` for every optional dependency.

``has_*`` answer without importing the library (``importlib.util.find_spec``),
so asking is free.  ``require_*`` imports it and raises one clear
:class:`MissingDependencyError` naming the extra that installs it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Iterator

from leukedge.errors import MissingDependencyError


@dataclass(frozen=True)
class Dependency:
    module: str  # import name
    purpose: str  # what needs it, in a user's words
    install: str  # command that installs it


DEPENDENCIES: dict[str, Dependency] = {
    "tensorflow": Dependency("tensorflow", "training and the Keras backend", "pip install 'leukedge[train]'"),
    "tf2onnx": Dependency("tf2onnx", "converting Keras models to ONNX", "pip install 'leukedge[convert]'"),
    "onnx": Dependency("onnx", "writing and checking ONNX models", "pip install 'leukedge[convert]'"),
    "onnxruntime": Dependency(
        "onnxruntime", "the ONNX Runtime backend and INT8 calibration", "pip install onnxruntime"
    ),
    "tensorrt": Dependency(
        "tensorrt",
        "TensorRT engines",
        "install JetPack (it ships TensorRT's Python bindings) or NVIDIA's tensorrt wheel",
    ),
    "pycuda": Dependency("pycuda", "CUDA preprocessing and TensorRT buffers", "pip install 'leukedge[jetson]'"),
    "picamera2": Dependency(
        "picamera2",
        "Raspberry Pi cameras",
        "sudo apt install python3-picamera2 (Raspberry Pi OS), or pip install 'leukedge[rpi]'",
    ),
    "paho": Dependency("paho.mqtt", "publishing results to MQTT", "pip install 'leukedge[serve]'"),
    "sklearn": Dependency("sklearn", "baseline classifiers in evaluate", "pip install 'leukedge[train]'"),
    "matplotlib": Dependency("matplotlib", "plots in HTML reports", "pip install 'leukedge[train]'"),
    "pyarrow": Dependency("pyarrow", "Parquet results files", "pip install 'leukedge[parquet]'"),
    "ray": Dependency("ray", "scoring on a Ray cluster (--cluster)", "pip install 'leukedge[cluster]'"),
}


def has(name: str) -> bool:
    """True when the library behind ``name`` (a key of DEPENDENCIES) can be imported.

    A folder without code (type stubs such as ``tensorrt-stubs`` install one)
    imports as an empty namespace package; that does not count.
    """
    dep = DEPENDENCIES[name]
    loaded = sys.modules.get(dep.module)
    if loaded is not None:  # already imported (or put there by a test's fake): code unless a bare namespace
        spec = getattr(loaded, "__spec__", None)
        return spec is None or spec.origin is not None
    try:
        spec = importlib.util.find_spec(dep.module)
    except (ImportError, ValueError):  # a parent package missing, or a broken install
        return False
    return spec is not None and spec.origin is not None


def require(name: str) -> ModuleType:
    """Import and return the library behind ``name``, or raise MissingDependencyError."""
    dep = DEPENDENCIES[name]
    if not has(name):
        raise MissingDependencyError(f"{dep.module} is needed for {dep.purpose} but is not installed", hint=dep.install)
    try:
        return importlib.import_module(dep.module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{dep.module} is needed for {dep.purpose} but could not be imported ({exc})",
            hint=dep.install,
        ) from exc


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Hide what C++ libraries write straight to file descriptor 2 while they start.

    TensorFlow's start-up lines (``WARNING: All log messages before
    absl::InitializeLog()``, ``I0000 … oneDNN``, ``E0000 … failed call to
    cuInit`` on a machine without a GPU) are written before any setting
    (TF_CPP_MIN_LOG_LEVEL) can silence them.  Python exceptions still
    propagate; use around an import or a model load, in one thread.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def has_tensorflow() -> bool:
    return has("tensorflow")


def require_tensorflow() -> ModuleType:
    return require("tensorflow")


def has_onnxruntime() -> bool:
    return has("onnxruntime")


def require_onnxruntime() -> ModuleType:
    return require("onnxruntime")


def has_tensorrt() -> bool:
    return has("tensorrt")


def require_tensorrt() -> ModuleType:
    """The real ``tensorrt`` module, or MissingDependencyError; the one TensorRT check every caller uses.

    Type stubs (``tensorrt-stubs``) can import as a module without code: a
    module with neither ``Builder`` nor ``Runtime`` is not TensorRT.
    """
    trt = require("tensorrt")
    if not (hasattr(trt, "Builder") or hasattr(trt, "Runtime")):
        raise MissingDependencyError(
            "the 'tensorrt' that imports here has no Builder or Runtime: it is the type stubs (tensorrt-stubs), "
            "not TensorRT",
            hint=f"{list(getattr(trt, '__path__', []))} holds no TensorRT; {DEPENDENCIES['tensorrt'].install}",
        )
    return trt


def tensorrt_usable() -> bool:
    """True when :func:`require_tensorrt` succeeds (imports TensorRT; ``has("tensorrt")`` does not)."""
    try:
        require_tensorrt()
    except MissingDependencyError:
        return False
    return True


def has_pycuda() -> bool:
    return has("pycuda")


def require_pycuda() -> ModuleType:
    return require("pycuda")


def has_ray() -> bool:
    return has("ray")


def require_ray() -> ModuleType:
    return require("ray")


def has_picamera2() -> bool:
    return has("picamera2")


def require_picamera2() -> ModuleType:
    return require("picamera2")
