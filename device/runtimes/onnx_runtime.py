"""ONNX Runtime: FP32 or INT8 (Q/DQ) ONNX from a bundle, CUDA execution provider where present."""

from __future__ import annotations

from typing import Any, List, Optional

import numpy as np

from leukedge.bundle import CLASSES_KEY, PRECISION_FILES, Bundle, check_trained_classes
from leukedge.device.runtimes.base import Runtime
from leukedge.errors import BundleError, HardwareUnavailableError
from leukedge.extras import require_onnxruntime


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(
        self,
        bundle: Bundle,
        precision: str = "fp32",
        *,
        device: str = "auto",
        threads: Optional[int] = None,
        spin: bool = False,
    ) -> None:
        if precision == "fp16":
            raise BundleError(
                "onnxruntime: the bundle has no FP16 ONNX; FP16 is a TensorRT precision",
                hint="use --precision fp32 or int8 with ONNX Runtime, or --backend tensorrt for fp16",
            )
        super().__init__(bundle.manifest, precision)
        self.bundle = bundle
        self.path = bundle.path_of(PRECISION_FILES[precision])
        self.device = device
        self.threads = threads
        self.spin = spin
        self.session: Any = None
        self.providers: List[str] = []

    def _load(self) -> None:
        ort = require_onnxruntime()
        available = ort.get_available_providers()
        if self.device == "cuda" and "CUDAExecutionProvider" not in available:
            raise HardwareUnavailableError(
                f"onnxruntime: CUDA was asked for, but this ONNX Runtime offers only {', '.join(available)}",
                hint="install onnxruntime-gpu (x86) or NVIDIA's Jetson build, or use --device cpu",
            )
        want = ["CPUExecutionProvider"]
        if self.device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
            want.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = self.threads
        # Idle ORT threads spin by default; on a small board that steals the cores segmentation needs.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=want)
        except Exception as exc:  # onnxruntime raises its own exception types for bad models
            raise BundleError(f"{self.path}: ONNX Runtime cannot load this model ({exc})") from exc
        self.providers = list(self.session.get_providers())
        inputs = self.session.get_inputs()
        if inputs[0].name != self.manifest.input_name:
            raise BundleError(
                f"{self.path}: the model's input is named {inputs[0].name!r}, but the manifest "
                f"(input_name) says {self.manifest.input_name!r}; the model does not match its manifest",
                hint="re-create the bundle with 'leukedge convert'",
            )
        shape = [d if isinstance(d, int) else None for d in inputs[0].shape[1:]]
        if shape != list(self.input_shape):
            raise BundleError(
                f"{self.path}: the model takes inputs of shape {shape}, but the manifest describes "
                f"{list(self.input_shape)}; the model does not match its manifest",
                hint="re-create the bundle with 'leukedge convert'",
            )
        self._input = inputs[0].name
        self._output = self._check_outputs()

    def _check_outputs(self) -> str:
        """The manifest's output tensor must exist, and the order recorded in the model must be the manifest's."""
        names = [o.name for o in self.session.get_outputs()]
        if self.manifest.output_name not in names:
            raise BundleError(
                f"{self.path}: the manifest (output_name) names the output {self.manifest.output_name!r}, "
                f"but the model's outputs are {names}; the model does not match its manifest",
                hint="re-create the bundle with 'leukedge convert', or fix output_name by hand",
            )
        meta = self.session.get_modelmeta().custom_metadata_map or {}
        check_trained_classes(meta.get(CLASSES_KEY), self.manifest, self.path)
        return str(self.manifest.output_name)

    def _unload(self) -> None:
        self.session = None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([self._output], {self._input: batch})[0])

    def describe(self) -> str:
        prov = self.providers[0].replace("ExecutionProvider", "") if self.providers else "?"
        return f"onnxruntime {self.precision} ({prov})"
