"""TensorRT: an engine built from the bundle's ONNX on this device (and cached), run with pycuda buffers.

The engine comes from ``leukedge.device.trt_engine.load_or_build_engine``
(built on first use, then read from the bundle's cache).  Inputs are copied
from a pinned host buffer to the GPU, the engine runs asynchronously on a
CUDA stream, and the probabilities come back the same way.  Batches go up
to the engine's optimisation profile (its maximum batch); an engine with a
fixed batch is fed padded batches.

Both TensorRT APIs are supported: named tensors (``set_tensor_address`` +
``execute_async_v3``; TensorRT 8.5 and later, the only API in 10) and
bindings (``execute_async_v2``; TensorRT 8.x as in JetPack 5).
Nothing is imported before ``open()``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from leukedge.arguments import arg
from leukedge.bundle import Bundle
from leukedge.device.cuda_context import CudaContext, free_buffer
from leukedge.device.runtimes.base import Runtime
from leukedge.errors import BundleError, InvalidInputError
from leukedge.extras import require_pycuda, require_tensorrt

if TYPE_CHECKING:
    import tensorrt as trt

TRT_PRECISIONS = ("fp32", "fp16", "int8")


import_tensorrt = require_tensorrt  # the one TensorRT check (leukedge.extras); the name tests and callers use


class _TensorIO:
    """TensorRT ≥ 8.5: I/O by tensor name."""

    def __init__(self, engine: trt.ICudaEngine, context: trt.IExecutionContext) -> None:
        import tensorrt as trt

        self.engine = engine
        self.context = context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]

    def shape(self, name: str) -> List[int]:
        dims = self.engine.get_tensor_shape(name)
        return [int(dims[i]) for i in range(len(dims))]

    def dtype(self, name: str) -> Any:
        return self.engine.get_tensor_dtype(name)

    def max_batch(self, name: str) -> int:
        lo_opt_hi = self.engine.get_tensor_profile_shape(name, 0)
        hi = lo_opt_hi[2]
        return int(hi[0])

    def execute(self, batch: int, rest: Tuple[int, ...], addresses: Dict[str, int], stream: Any) -> bool:
        if self.shape(self.inputs[0])[0] == -1:
            self.context.set_input_shape(self.inputs[0], (batch, *rest))
        for name, ptr in addresses.items():
            self.context.set_tensor_address(name, ptr)
        return bool(self.context.execute_async_v3(stream.handle))


class _BindingIO:
    """TensorRT 8.x: I/O by binding index (deprecated in 8.5, removed in 10); typed loosely on purpose."""

    def __init__(self, engine: Any, context: Any) -> None:
        self.engine = engine
        self.context = context
        names = [engine.get_binding_name(i) for i in range(engine.num_bindings)]
        self.index = {n: i for i, n in enumerate(names)}
        self.inputs = [n for n in names if engine.binding_is_input(self.index[n])]
        self.outputs = [n for n in names if n not in self.inputs]

    def shape(self, name: str) -> List[int]:
        return [int(d) for d in self.engine.get_binding_shape(self.index[name])]

    def dtype(self, name: str) -> Any:
        return self.engine.get_binding_dtype(self.index[name])

    def max_batch(self, name: str) -> int:
        return int(self.engine.get_profile_shape(0, self.index[name])[2][0])

    def execute(self, batch: int, rest: Tuple[int, ...], addresses: Dict[str, int], stream: Any) -> bool:
        first = self.index[self.inputs[0]]
        if self.shape(self.inputs[0])[0] == -1:
            self.context.set_binding_shape(first, (batch, *rest))
        bindings = [0] * len(self.index)
        for name, ptr in addresses.items():
            bindings[self.index[name]] = ptr
        return bool(self.context.execute_async_v2(bindings=bindings, stream_handle=stream.handle))


def _io_for(engine: Any, context: Any) -> Any:
    if hasattr(context, "execute_async_v3") and hasattr(engine, "num_io_tensors"):
        return _TensorIO(engine, context)
    return _BindingIO(engine, context)


class TensorRTRuntime(Runtime):
    name = "tensorrt"

    def __init__(
        self,
        bundle: Bundle,
        precision: str = "fp16",
        *,
        max_batch: int = 32,
        device: int = 0,
        context: Optional[CudaContext] = None,
        engine_path: Optional[Path] = None,
    ) -> None:
        if precision not in TRT_PRECISIONS:
            raise InvalidInputError(
                f"tensorrt: {arg('precision', precision)} is not a TensorRT precision, "
                f"expected one of {', '.join(TRT_PRECISIONS)}"
            )
        if max_batch < 1:
            raise InvalidInputError(f"tensorrt: {arg('max_batch', max_batch)} is below 1, expected >= 1")
        super().__init__(bundle.manifest, precision)
        self.bundle = bundle
        self.requested_batch = int(max_batch)
        self.max_batch = int(max_batch)
        self.engine_path = engine_path
        self._ctx = context or CudaContext(device)
        self._own_ctx = context is None
        self._lock = threading.Lock()  # one stream and one set of buffers: one call at a time
        self._io: Any = None
        self._engine: Any = None
        self._context: Any = None
        self._trt_runtime: Any = None
        self._bufs: Dict[str, Any] = {}
        self._stream: Any = None
        self._static_batch: Optional[int] = None
        self.gpu_name = ""

    # -- loading ---------------------------------------------------------------
    def _load(self) -> None:
        import_tensorrt()
        require_pycuda()
        self._ctx.open()
        self.gpu_name = self._ctx.name
        try:
            with self._ctx:
                self._deserialize(self._engine_file())
                self._allocate()
        except BaseException:
            self._release()
            raise

    def _engine_file(self) -> Path:
        if self.engine_path is not None:
            return Path(self.engine_path)
        from leukedge.device.trt_engine import load_or_build_engine  # builds (with progress) on first use

        return Path(load_or_build_engine(self.bundle, self.precision, self.requested_batch))

    def _deserialize(self, path: Path) -> None:
        import tensorrt as trt

        logger = trt.Logger(trt.Logger.WARNING)
        self._trt_runtime = trt.Runtime(logger)
        engine = self._trt_runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise BundleError(
                f"{path}: TensorRT {getattr(trt, '__version__', '?')} cannot load this engine "
                "(built by another TensorRT version or for another GPU, or the file is damaged)",
                hint=f"delete {path} and run again: the engine is rebuilt from the bundle's ONNX",
            )
        self._engine = engine
        self._context = engine.create_execution_context()
        io = _io_for(engine, self._context)
        self._check_io(io, path)
        self._io = io

    def _check_io(self, io: Any, path: Path) -> None:
        import tensorrt as trt

        m = self.manifest
        if io.inputs != [m.input_name] or m.output_name not in io.outputs:
            raise BundleError(
                f"{path}: the engine's inputs are {io.inputs} and outputs {io.outputs}, but the manifest "
                f"says input {m.input_name!r} and output {m.output_name!r}; the engine does not match its manifest",
                hint=f"delete {path} to rebuild it, or re-create the bundle with 'leukedge convert'",
            )
        shape = io.shape(m.input_name)
        if shape[1:] != list(self.input_shape):
            raise BundleError(
                f"{path}: the engine takes inputs of shape {shape}, but the manifest describes "
                f"[N, {', '.join(map(str, self.input_shape))}]; the engine does not match its manifest",
                hint=f"delete {path} to rebuild it, or re-create the bundle with 'leukedge convert'",
            )
        for name in (m.input_name, m.output_name):
            if io.dtype(name) != trt.float32:
                raise BundleError(f"{path}: tensor {name!r} is {io.dtype(name)}, expected float32 I/O")
        out = io.shape(m.output_name)
        if out[-1] != len(m.classes):
            raise BundleError(
                f"{path}: the engine outputs {out[-1]} classes, the manifest lists {len(m.classes)} {list(m.classes)}"
            )
        if shape[0] == -1:
            self.max_batch = max(1, min(self.requested_batch, io.max_batch(m.input_name)))
        else:
            self._static_batch = int(shape[0])
            self.max_batch = self._static_batch

    def _allocate(self) -> None:
        import pycuda.driver as cuda

        n, classes = self.max_batch, len(self.manifest.classes)
        self._bufs["h_in"] = cuda.pagelocked_empty((n, *self.input_shape), np.float32)
        self._bufs["h_out"] = cuda.pagelocked_empty((n, classes), np.float32)
        self._bufs["d_in"] = cuda.mem_alloc(self._bufs["h_in"].nbytes)
        self._bufs["d_out"] = cuda.mem_alloc(self._bufs["h_out"].nbytes)
        self._stream = cuda.Stream()

    # -- running -----------------------------------------------------------------
    def _run(self, batch: np.ndarray) -> np.ndarray:
        import pycuda.driver as cuda

        n = len(batch)
        run_n = self._static_batch or n
        b = self._bufs
        with self._lock, self._ctx:
            h_in = b["h_in"][:run_n]
            np.copyto(h_in[:n], batch)
            if run_n > n:
                h_in[n:] = 0.0  # pad a fixed-batch engine; the padding's outputs are discarded
            cuda.memcpy_htod_async(b["d_in"], h_in, self._stream)
            return self._execute(n)

    def run_from_device(self, n: int, fill: Callable[[Any, Any], None]) -> np.ndarray:
        """Probabilities (n × classes) for a batch that ``fill(input_pointer, stream)`` writes straight into
        the engine's input binding on the GPU (the CUDA LoG does): no host copy of the inputs.

        ``fill`` runs with this runtime's context current and its lock held; it queues its work on
        ``stream``, the stream the engine then runs on, so nothing waits in between.  A fixed-batch
        engine also runs the rows past ``n`` (left from an earlier batch); their outputs are discarded.
        """
        if not self._open:
            self.open()
        if not 1 <= n <= self.max_batch:  # type: ignore[operator]
            raise InvalidInputError(f"tensorrt: a device batch of {n}, expected 1 to {self.max_batch}")
        with self._lock, self._ctx:
            fill(self._bufs["d_in"], self._stream)
            return self._execute(n)

    def _execute(self, n: int) -> np.ndarray:
        """Run the engine on what ``d_in`` holds; only the (n, classes) output comes back. Lock and context held."""
        import pycuda.driver as cuda

        run_n = self._static_batch or n
        b = self._bufs
        h_out = b["h_out"][:run_n]
        addresses = {self.manifest.input_name: int(b["d_in"]), self.manifest.output_name: int(b["d_out"])}
        if not self._io.execute(run_n, tuple(self.input_shape), addresses, self._stream):
            raise BundleError(f"tensorrt: the engine failed to run a batch of {run_n} (see the TensorRT log above)")
        cuda.memcpy_dtoh_async(h_out, b["d_out"], self._stream)
        self._stream.synchronize()
        return np.array(h_out[:n], copy=True)

    # -- releasing -----------------------------------------------------------------
    def _unload(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._ctx.ctx is not None:
            with self._ctx:
                for buf in self._bufs.values():
                    free_buffer(buf)
                self._bufs.clear()
                self._stream = None
                self._io = None
                self._context = None
                self._engine = None
            if self._own_ctx:
                self._ctx.close()

    def describe(self) -> str:
        return f"tensorrt {self.precision} (batch ≤ {self.max_batch}{', ' + self.gpu_name if self.gpu_name else ''})"
