"""What is usable on this machine, and why not.

Each probe returns a :class:`Check`; a probe never raises.  Probes import
the library they check (that is their job), so this module is imported only
by ``leukedge doctor``.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from leukedge.extras import DEPENDENCIES, has, quiet_native_logs

OK, MISSING, UNUSABLE = "ok", "missing", "unusable"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | missing | unusable
    detail: str  # version and facts, or why not
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _missing(name: str, key: str) -> Check:
    return Check(name, MISSING, "not installed", DEPENDENCIES[key].install)


def check_python() -> Check:
    return Check("python", OK, f"{platform.python_version()} on {platform.system()} {platform.machine()}")


def check_platform() -> Check:
    tegra = Path("/etc/nv_tegra_release")
    if tegra.exists():
        return Check("board", OK, "NVIDIA Jetson: " + tegra.read_text(errors="replace").splitlines()[0][:80])
    model = Path("/proc/device-tree/model")
    if model.exists():
        return Check("board", OK, model.read_text(errors="replace").strip("\x00\n")[:80])
    return Check("board", OK, f"generic {platform.machine()} ({os.cpu_count()} CPUs)")


def check_opencv() -> Check:
    try:
        import cv2
    except ImportError as exc:
        return Check("opencv", MISSING, str(exc), "pip install opencv-python-headless")
    info = cv2.getBuildInformation()
    gst = _build_flag(info, "GStreamer")
    where = Path(cv2.__file__).resolve()
    origin = "system/JetPack build" if str(where).startswith("/usr/") else "PyPI wheel"
    detail = f"{cv2.__version__} ({origin}, {where.parent}); GStreamer: {gst}; FFMPEG: {_build_flag(info, 'FFMPEG')}"
    fix = ""
    if gst != "YES":
        fix = "csi:// sources need GStreamer: use the OpenCV that JetPack ships (pip uninstall opencv-python-headless)"
    return Check("opencv", OK, detail, fix)


def _build_flag(info: str, name: str) -> str:
    for line in info.splitlines():
        if line.strip().startswith(name + ":"):
            return line.split(":", 1)[1].strip().split()[0]
    return "unknown"


def check_onnxruntime() -> Check:
    if not has("onnxruntime"):
        return _missing("onnxruntime", "onnxruntime")
    try:
        import onnxruntime as ort

        return Check("onnxruntime", OK, f"{ort.__version__}; providers: {', '.join(ort.get_available_providers())}")
    except Exception as exc:  # doctor reports every failure instead of raising
        return Check("onnxruntime", UNUSABLE, f"import failed: {exc}", DEPENDENCIES["onnxruntime"].install)


def check_tensorflow() -> Check:
    if not has("tensorflow"):
        return _missing("tensorflow", "tensorflow")
    try:
        with quiet_native_logs():  # absl's start-up lines and 'cuInit' errors on a machine without a GPU
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
        return Check("tensorflow", OK, f"{tf.__version__}; GPUs: {len(gpus)}")
    except Exception as exc:
        return Check("tensorflow", UNUSABLE, f"import failed: {exc}", DEPENDENCIES["tensorflow"].install)


def check_converters() -> Check:
    missing = [k for k in ("tf2onnx", "onnx") if not has(k)]
    if missing:
        return Check("tf2onnx+onnx", MISSING, f"not installed: {', '.join(missing)}", DEPENDENCIES["tf2onnx"].install)
    try:
        onnx = importlib.import_module("onnx")
        return Check("tf2onnx+onnx", OK, f"onnx {onnx.__version__}; tf2onnx installed")
    except Exception as exc:
        return Check("tf2onnx+onnx", UNUSABLE, f"import failed: {exc}", DEPENDENCIES["tf2onnx"].install)


def check_tensorrt() -> Check:
    if not has("tensorrt"):
        return _missing("tensorrt", "tensorrt")
    try:
        import tensorrt as trt

        return Check("tensorrt", OK, f"{trt.__version__}")
    except Exception as exc:
        return Check("tensorrt", UNUSABLE, f"import failed: {exc}", DEPENDENCIES["tensorrt"].install)


def check_cuda() -> Check:
    if not has("pycuda"):
        drv = Path("/proc/driver/nvidia/version")
        hint = " (an NVIDIA driver is present)" if drv.exists() else " (and no NVIDIA driver was found)"
        return Check("pycuda+gpu", MISSING, "pycuda not installed" + hint, DEPENDENCIES["pycuda"].install)
    try:
        import pycuda.driver as cuda

        cuda.init()
        n = cuda.Device.count()
        if n == 0:
            return Check("pycuda+gpu", UNUSABLE, "pycuda works but sees no CUDA device", "check the NVIDIA driver")
        dev = cuda.Device(0)
        major, minor = dev.compute_capability()
        mem = dev.total_memory() / 2**30
        return Check("pycuda+gpu", OK, f"{n} device(s); 0: {dev.name()} (sm_{major}{minor}, {mem:.1f} GiB)")
    except Exception as exc:
        return Check("pycuda+gpu", UNUSABLE, f"CUDA unusable: {exc}", "check the NVIDIA driver (nvidia-smi)")


def check_picamera2() -> Check:
    if not has("picamera2"):
        return _missing("picamera2", "picamera2")
    try:
        from picamera2 import Picamera2

        cams = Picamera2.global_camera_info()
        return Check("picamera2", OK, f"{len(cams)} camera(s)" + (f": {cams[0].get('Model')}" if cams else ""))
    except Exception as exc:
        return Check(
            "picamera2",
            UNUSABLE,
            f"import failed: {exc}",
            "picamera2 runs on Raspberry Pi OS with libcamera: sudo apt install python3-picamera2",
        )


def check_reference_bundle() -> Check:
    from leukedge.bundle import Bundle
    from leukedge.errors import LeukedgeError

    try:
        b = Bundle.load(None)
        return Check("reference model", OK, f"{b.manifest.name} {', '.join(sorted(b.manifest.files))} ({b.short_hash})")
    except LeukedgeError as exc:
        return Check("reference model", UNUSABLE, exc.message, exc.hint or "")


PROBES: list[Callable[[], Check]] = [
    check_python,
    check_platform,
    check_opencv,
    check_onnxruntime,
    check_tensorflow,
    check_converters,
    check_tensorrt,
    check_cuda,
    check_picamera2,
    check_reference_bundle,
]


def run_checks() -> list[Check]:
    out = []
    for probe in PROBES:
        try:
            out.append(probe())
        except Exception as exc:  # a probe bug must not hide the other answers
            out.append(Check(probe.__name__[len("check_") :], UNUSABLE, f"probe failed: {exc!r}"))
    return out


def capabilities(checks: list[Check]) -> dict[str, bool]:
    """What the user can do, derived from the checks."""
    st = {c.name: c.status == OK for c in checks}
    return {
        "train": st.get("tensorflow", False),
        "convert": st.get("tensorflow", False) and st.get("tf2onnx+onnx", False) and st.get("onnxruntime", False),
        "screen on CPU (ONNX Runtime)": st.get("onnxruntime", False),
        "CUDA preprocessing": st.get("pycuda+gpu", False),
        "TensorRT engines": st.get("tensorrt", False) and st.get("pycuda+gpu", False),
        "Raspberry Pi camera": st.get("picamera2", False),
    }


def interpreter() -> str:
    return sys.executable
