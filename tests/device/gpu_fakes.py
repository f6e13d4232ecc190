"""Small fakes of pycuda.driver and tensorrt, enough to run TensorRTRuntime's own logic on a CPU.

Device memory is a dict of bytearrays keyed by fake pointers.  The fake
engine "computes" softmax([-m, m]) per item, m being the mean of its input,
so results can be checked.  ``install(monkeypatch, api=...)`` puts both
modules into sys.modules; ``api`` is "tensor" (TensorRT ≥ 8.5/10) or
"binding" (TensorRT 8.x bindings).
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from typing import Any, Dict, List, Optional

import numpy as np

MEMORY: Dict[int, bytearray] = {}
CALLS: List[tuple] = []


# -- pycuda.driver --------------------------------------------------------------------------


class DeviceAllocation:
    _next = 0x1000

    def __init__(self, nbytes: int) -> None:
        DeviceAllocation._next += 0x100000
        self.ptr = DeviceAllocation._next
        MEMORY[self.ptr] = bytearray(nbytes)

    def __int__(self) -> int:
        return self.ptr

    def free(self) -> None:
        CALLS.append(("free", self.ptr))
        MEMORY.pop(self.ptr, None)


class HostAllocation:
    def __init__(self, nbytes: int) -> None:
        self.buf = bytearray(nbytes)

    def free(self) -> None:
        CALLS.append(("free_host",))


def pagelocked_empty(shape: Any, dtype: Any) -> np.ndarray:
    holder = HostAllocation(int(np.prod(shape)) * np.dtype(dtype).itemsize)
    arr = np.frombuffer(holder.buf, dtype=dtype).reshape(shape)
    # Keep the holder reachable as .base's owner, like pycuda's HostAllocation.
    view = arr.view()
    return _PinnedArray(view, holder)


class _PinnedArray(np.ndarray):
    def __new__(cls, arr: np.ndarray, holder: HostAllocation) -> _PinnedArray:
        obj = arr.view(cls)
        obj._holder = holder  # type: ignore[attr-defined]
        return obj

    @property
    def base(self) -> Any:  # type: ignore[override]
        return getattr(self, "_holder", None)


def memcpy_htod_async(dest: DeviceAllocation, src: np.ndarray, stream: Any = None) -> None:
    data = np.ascontiguousarray(src).tobytes()
    CALLS.append(("htod", len(data)))
    MEMORY[int(dest)][: len(data)] = data


def memcpy_dtoh_async(dest: np.ndarray, src: DeviceAllocation, stream: Any = None) -> None:
    n = dest.nbytes
    CALLS.append(("dtoh", n))
    dest[...] = np.frombuffer(bytes(MEMORY[int(src)][:n]), dtype=dest.dtype).reshape(dest.shape)


class Event:
    def record(self, stream: Any = None) -> None:
        pass

    def time_since(self, other: Event) -> float:
        return 0.0


class Stream:
    handle = 42

    def synchronize(self) -> None:
        CALLS.append(("sync",))


class _Ctx:
    def push(self) -> None:
        CALLS.append(("push",))

    def detach(self) -> None:
        CALLS.append(("detach",))


class Device:
    def __init__(self, i: int) -> None:
        self.i = i

    @staticmethod
    def count() -> int:
        return 1

    def name(self) -> str:
        return "Fake GPU"

    def retain_primary_context(self) -> _Ctx:
        return _Ctx()


class Context:
    @staticmethod
    def pop() -> None:
        CALLS.append(("pop",))


def make_pycuda() -> types.ModuleType:
    driver = types.ModuleType("pycuda.driver")
    for name, obj in {
        "init": lambda: None,
        "Device": Device,
        "Context": Context,
        "Stream": Stream,
        "Event": Event,
        "mem_alloc": DeviceAllocation,
        "pagelocked_empty": pagelocked_empty,
        "memcpy_htod_async": memcpy_htod_async,
        "memcpy_dtoh_async": memcpy_dtoh_async,
    }.items():
        setattr(driver, name, obj)
    pkg = types.ModuleType("pycuda")
    pkg.driver = driver  # type: ignore[attr-defined]
    return pkg


# -- tensorrt ----------------------------------------------------------------------------------


class EngineSpec:
    """What the fake engine looks like: tensor names, shapes (batch -1 = dynamic), profile max, dtype."""

    def __init__(
        self,
        *,
        inp: str = "input",
        out: str = "predictions",
        shape: tuple = (-1, 128, 128, 3),
        classes: int = 2,
        profile_max: int = 16,
        dtype: str = "float32",
    ) -> None:
        self.inp, self.out, self.shape, self.classes = inp, out, shape, classes
        self.profile_max, self.dtype = profile_max, dtype


def engine_output(batch: np.ndarray) -> np.ndarray:
    """What the fake engine computes for a batch: softmax([-m, m]), m the mean of each item."""
    m = batch.reshape(len(batch), -1).mean(axis=1)
    e = np.exp(np.stack([-m, m], axis=1))
    return e / e.sum(axis=1, keepdims=True)


def fake_engine_file(folder: Any) -> Any:
    """A file the fake TensorRT deserializes into an engine."""
    path = folder / "model.engine"
    path.write_bytes(b"ENGINE")
    return path


def _compute(addresses: Dict[str, int], spec: EngineSpec, batch: int) -> None:
    item = int(np.prod(spec.shape[1:]))
    x = np.frombuffer(bytes(MEMORY[addresses[spec.inp]][: batch * item * 4]), np.float32).reshape(batch, item)
    m = x.mean(axis=1)
    logits = np.stack([-m, m], axis=1)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    out = p.astype(np.float32).tobytes()
    MEMORY[addresses[spec.out]][: len(out)] = out


class TensorContext:
    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.addresses: Dict[str, int] = {}
        self.batch: Optional[int] = None

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        CALLS.append(("set_input_shape", name, tuple(shape)))
        self.batch = shape[0]
        return True

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        batch = self.batch if self.spec.shape[0] == -1 else self.spec.shape[0]
        CALLS.append(("execute_async_v3", batch))
        _compute(self.addresses, self.spec, int(batch))  # type: ignore[arg-type]
        return True


class TensorEngine:
    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.num_io_tensors = 2

    def get_tensor_name(self, i: int) -> str:
        return [self.spec.inp, self.spec.out][i]

    def get_tensor_mode(self, name: str) -> str:
        return "INPUT" if name == self.spec.inp else "OUTPUT"

    def get_tensor_shape(self, name: str) -> tuple:
        return self.spec.shape if name == self.spec.inp else (self.spec.shape[0], self.spec.classes)

    def get_tensor_dtype(self, name: str) -> str:
        return self.spec.dtype

    def get_tensor_profile_shape(self, name: str, profile: int) -> list:
        rest = self.spec.shape[1:]
        return [(1, *rest), (8, *rest), (self.spec.profile_max, *rest)]

    def create_execution_context(self) -> TensorContext:
        return TensorContext(self.spec)


class BindingContext:
    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.batch: Optional[int] = None

    def set_binding_shape(self, index: int, shape: tuple) -> bool:
        CALLS.append(("set_binding_shape", index, tuple(shape)))
        self.batch = shape[0]
        return True

    def execute_async_v2(self, bindings: list, stream_handle: int) -> bool:
        batch = self.batch if self.spec.shape[0] == -1 else self.spec.shape[0]
        CALLS.append(("execute_async_v2", batch, list(bindings)))
        _compute({self.spec.inp: bindings[0], self.spec.out: bindings[1]}, self.spec, int(batch))  # type: ignore[arg-type]
        return True


class BindingEngine:
    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.num_bindings = 2

    def get_binding_name(self, i: int) -> str:
        return [self.spec.inp, self.spec.out][i]

    def binding_is_input(self, i: int) -> bool:
        return i == 0

    def get_binding_shape(self, i: int) -> tuple:
        return self.spec.shape if i == 0 else (self.spec.shape[0], self.spec.classes)

    def get_binding_dtype(self, i: int) -> str:
        return self.spec.dtype

    def get_profile_shape(self, profile: int, i: int) -> list:
        rest = self.spec.shape[1:]
        return [(1, *rest), (8, *rest), (self.spec.profile_max, *rest)]

    def create_execution_context(self) -> BindingContext:
        return BindingContext(self.spec)


def make_tensorrt(spec: EngineSpec, api: str) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.0-fake" if api == "tensor" else "8.5-fake"  # type: ignore[attr-defined]
    trt.float32 = "float32"  # type: ignore[attr-defined]
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")  # type: ignore[attr-defined]

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            self.level = level

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes) -> Any:
            CALLS.append(("deserialize", len(data)))
            if data != b"ENGINE":
                return None
            return TensorEngine(spec) if api == "tensor" else BindingEngine(spec)

    trt.Logger = Logger  # type: ignore[attr-defined]
    trt.Runtime = Runtime  # type: ignore[attr-defined]
    return trt


def fake_spec(module: types.ModuleType) -> types.ModuleType:
    """Give a fake module the spec a real one has, so importlib.util.find_spec (leukedge.extras.has) sees it."""
    module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, loader=None, origin="<test fake>")
    return module


def install(monkeypatch: Any, spec: Optional[EngineSpec] = None, *, api: str = "tensor") -> None:
    MEMORY.clear()
    CALLS.clear()
    pycuda = make_pycuda()
    for m in (pycuda, pycuda.driver):  # type: ignore[attr-defined]
        fake_spec(m)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", pycuda.driver)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorrt", fake_spec(make_tensorrt(spec or EngineSpec(), api)))
    monkeypatch.setattr("leukedge.device.cuda_context.has", lambda name: True)
