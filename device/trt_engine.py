"""TensorRT engines for a bundle: keyed, cached, rebuilt when the device or model changes.

The contract with the device runtime::

    path = load_or_build_engine(bundle, "int8", max_batch=32)

returns a serialized engine valid for this device, building it on first use
(minutes on a Jetson, with progress) and reusing it afterwards.  An engine is
only valid for the model, precision, batch profile, TensorRT version and GPU
it was built for; those five make its key (:func:`engine_key`), stored in a
JSON file beside the engine together with the engine's SHA-256.  A cached
engine whose key or hash does not match is reported and rebuilt: never loaded.

Engines live in ``<bundle>/engines/``, or in ``~/.cache/leukedge/engines/<model
hash>/`` when the bundle folder is read-only (the reference bundle installed
with the package).  TensorRT is imported inside functions only.

It lives in the device package because engines are built and cached on the
device that runs them; ``leukedge convert --tensorrt`` (converters) calls it
from there.  ``leukedge.converters.trt_engine`` re-exports it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from leukedge.bundle import PRECISION_FILES, REFERENCE_BUNDLE, Bundle, sha256_file
from leukedge.errors import BundleError, InvalidInputError
from leukedge.extras import require_tensorrt, tensorrt_usable
from leukedge.verdict import int8_passed

ENGINE_DIR = "engines"
PRECISIONS = ("fp32", "fp16", "int8")
Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class EngineKey:
    """What an engine is valid for.  Two engines with equal keys are interchangeable."""

    model_sha256: str  # of the ONNX file the engine is built from
    precision: str
    min_batch: int
    opt_batch: int
    max_batch: int
    tensorrt: str  # TensorRT version, e.g. "8.6.2" or "10.3.0"
    gpu: str  # GPU name and compute capability, e.g. "Orin (sm_87)"

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def differences(self, cached: Dict[str, Any]) -> List[str]:
        """Human-readable fields in which a cached engine's key differs from this one."""
        return [
            f"{name} {cached.get(name)!r} (cached) vs {value!r} (here)"
            for name, value in self.to_dict().items()
            if cached.get(name) != value
        ]


tensorrt_available = tensorrt_usable  # the name converters and device/bench.py used


def tensorrt_version() -> str:
    return str(require_tensorrt().__version__)


def gpu_name(device: int = 0) -> str:
    """The GPU an engine is built for: name and compute capability where they can be read."""
    try:
        import pycuda.driver as cuda

        cuda.init()
        d = cuda.Device(device)
        major, minor = d.compute_capability()
        return f"{d.name()} (sm_{major}{minor})"
    except Exception:  # pycuda absent or no driver: try the next source
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        lines = out.stdout.strip().splitlines()
        if out.returncode == 0 and len(lines) > device:
            name, _, cap = lines[device].partition(",")
            return f"{name.strip()} (sm_{cap.strip().replace('.', '')})"
    except (OSError, subprocess.SubprocessError):
        pass
    model = Path("/proc/device-tree/model")  # Jetson: no nvidia-smi, the board names the GPU
    if model.is_file():
        return model.read_bytes().rstrip(b"\x00").decode("utf-8", "replace").strip()
    return "unknown GPU"


def profile_batches(max_batch: int, opt_batch: Optional[int] = None) -> Tuple[int, int, int]:
    """(min, opt, max) of the optimization profile: 1 to ``max_batch``, tuned for ``opt`` (default max)."""
    if not 1 <= max_batch <= 4096:
        raise InvalidInputError(f"max_batch is {max_batch}, expected an integer in [1, 4096]")
    opt = max_batch if opt_batch is None else opt_batch
    if not 1 <= opt <= max_batch:
        raise InvalidInputError(f"opt_batch is {opt}, expected an integer in [1, max_batch={max_batch}]")
    return 1, opt, max_batch


def onnx_for(bundle: Bundle, precision: str) -> Path:
    """The ONNX an engine of ``precision`` is built from: the Q/DQ model for INT8, FP32 otherwise."""
    if precision not in PRECISIONS:
        raise InvalidInputError(f"precision is {precision!r}, expected one of {', '.join(PRECISIONS)}")
    return bundle.path_of(PRECISION_FILES[precision])


def engine_key(
    bundle: Bundle,
    precision: str,
    max_batch: int,
    *,
    opt_batch: Optional[int] = None,
    tensorrt: Optional[str] = None,
    gpu: Optional[str] = None,
) -> EngineKey:
    """The key of the engine for this bundle, precision and profile on this device (or the one named)."""
    onnx_for(bundle, precision)  # checks the precision and that the bundle has the model
    lo, opt, hi = profile_batches(max_batch, opt_batch)
    return EngineKey(
        model_sha256=bundle.content_sha256(PRECISION_FILES[precision]),
        precision=precision,
        min_batch=lo,
        opt_batch=opt,
        max_batch=hi,
        tensorrt=tensorrt if tensorrt is not None else tensorrt_version(),
        gpu=gpu if gpu is not None else gpu_name(),
    )


def user_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "leukedge" / ENGINE_DIR


def engine_dir(bundle: Bundle, cache_dir: Optional[Path] = None) -> Path:
    """Where this bundle's engines live: ``cache_dir``, else ``<bundle>/engines``, else the user cache.

    The reference bundle shipped inside the package always uses the user cache.
    """
    if cache_dir is not None:
        return _writable(Path(cache_dir)) or _unwritable(Path(cache_dir))
    user = user_cache_root() / bundle.model_hash[:16]
    if bundle.root.resolve() == REFERENCE_BUNDLE.resolve():  # inside the installed package: never write there
        return _writable(user) or _unwritable(user)
    return _writable(bundle.root / ENGINE_DIR) or _writable(user) or _unwritable(user)


def _writable(folder: Path) -> Optional[Path]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return None
    return folder


def _unwritable(folder: Path) -> Path:
    raise BundleError(
        f"{folder}: cannot write a TensorRT engine there",
        hint="give a writable cache folder (cache_dir=…), or set XDG_CACHE_HOME to one",
    )


def engine_files(folder: Path, key: EngineKey) -> Tuple[Path, Path]:
    """The engine and its key file.  The name holds precision and profile only, so a key that no
    longer matches (new TensorRT, other GPU, re-converted model) is found, reported and replaced."""
    stem = f"{key.precision}-b{key.min_batch}-{key.opt_batch}-{key.max_batch}"
    return folder / f"{stem}.engine", folder / f"{stem}.json"


def check_cached(engine: Path, key_file: Path, key: EngineKey) -> Optional[str]:
    """None when ``engine`` is there and valid for ``key``; otherwise why it cannot be used."""
    if not engine.is_file() or not key_file.is_file():
        return "no engine built yet"
    try:
        cached = json.loads(key_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"its key file is unreadable ({exc})"
    if not isinstance(cached, dict):
        return "its key file is not a JSON object"
    diffs = key.differences(cached.get("key", {}))
    if diffs:
        return "built for another " + "; ".join(diffs)
    if cached.get("engine_sha256") != sha256_file(engine):
        return "the engine file does not match the SHA-256 in its key file (truncated or replaced)"
    return None


def load_or_build_engine(
    bundle: Bundle,
    precision: str,
    max_batch: int,
    *,
    cache_dir: Optional[Path] = None,
    progress: bool = True,
    rebuild: bool = False,
    opt_batch: Optional[int] = None,
    workspace_mb: int = 1024,
    log: Optional[Log] = None,
) -> Path:
    """Path of a serialized TensorRT engine for ``bundle`` valid on this device; builds it if needed.

    ``rebuild=True`` builds even when a matching engine is cached (for a runtime whose
    deserialization failed).  Messages (why a cached engine is not used, build progress)
    go to ``log`` (stderr by default).
    """
    say = log or _stderr
    require_tensorrt()
    key = engine_key(bundle, precision, max_batch, opt_batch=opt_batch)
    if precision == "int8" and not int8_passed(bundle.manifest):
        say(f"Warning: {bundle.root}: its INT8 model has not passed the acceptance gate (manifest parity.int8)")
    folder = engine_dir(bundle, cache_dir)
    engine, key_file = engine_files(folder, key)
    why = "rebuild requested" if rebuild else check_cached(engine, key_file, key)
    if why is None:
        return engine
    if engine.exists() or key_file.exists():
        say(f"TensorRT engine {engine} cannot be used: {why}; rebuilding")
    return _build(bundle, precision, key, folder, engine, key_file, workspace_mb, progress, say)


def _build(
    bundle: Bundle,
    precision: str,
    key: EngineKey,
    folder: Path,
    engine: Path,
    key_file: Path,
    workspace_mb: int,
    progress: bool,
    say: Log,
) -> Path:
    """Build the engine ``key`` describes and write it, its key file and the timing cache, each atomically."""
    from leukedge.device.trt_build import build_serialized_engine

    p = bundle.manifest.preprocessing
    sample = (p.input_height, p.input_width, 3) if p.layout == "NHWC" else (3, p.input_height, p.input_width)
    say(
        f"Building TensorRT {precision} engine for batch {key.min_batch}..{key.max_batch} on {key.gpu} "
        f"(TensorRT {key.tensorrt}); this takes minutes once, then it is cached in {folder}"
    )
    timing = folder / f"timing-{_timing_tag(key)}.cache"
    t0 = time.perf_counter()
    data, timing_data = build_serialized_engine(
        onnx_for(bundle, precision),
        precision=precision,
        input_name=bundle.manifest.input_name,
        shapes=tuple((b, *sample) for b in (key.min_batch, key.opt_batch, key.max_batch)),
        timing_cache=timing.read_bytes() if timing.is_file() else b"",
        workspace_bytes=workspace_mb << 20,
        progress=progress,
        log=say,
    )
    _write_atomic(timing, timing_data)
    seconds = time.perf_counter() - t0
    _write_atomic(engine, data)
    record = {
        "key": key.to_dict(),
        "engine_sha256": hashlib.sha256(data).hexdigest(),
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
        "bundle": str(bundle.root),
    }
    _write_atomic(key_file, (json.dumps(record, indent=2) + "\n").encode())
    say(f"TensorRT engine built in {seconds:.0f} s: {engine}")
    return engine


def _timing_tag(key: EngineKey) -> str:
    """Timing caches hold kernel timings: valid across models, not across TensorRT versions or GPUs."""
    return hashlib.sha256(f"{key.tensorrt}|{key.gpu}".encode()).hexdigest()[:12]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
