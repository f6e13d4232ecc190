"""Importing is free: `import leukedge` and every module load no heavy or hardware library."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "tensorrt", "pycuda", "picamera2", "paho", "ray"]
HARDWARE = ["tensorrt", "pycuda", "picamera2"]


def _loaded_after(code: str) -> dict:
    script = f"""
import json, sys
{code}
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_leukedge_loads_no_heavy_library() -> None:
    loaded = _loaded_after("import leukedge, leukedge.cli")
    assert not set(HEAVY) & set(loaded), f"import leukedge loaded {set(HEAVY) & set(loaded)}"


def test_screener_attribute_is_lazy_and_loads_no_runtime() -> None:
    loaded = _loaded_after("import leukedge; leukedge.Screener")
    assert not set(HEAVY) & set(loaded)


def test_every_module_imports_without_hardware_libraries() -> None:
    """Walk every leukedge module; core and device modules load no heavy library, none loads hardware ones."""
    script = r"""
import importlib, json, pkgutil, sys
import leukedge
HEAVY = set(%s); HARDWARE = set(%s)
names = set()
for pkg in ("leukedge", "leukedge.trainer", "leukedge.converters", "leukedge.device"):
    # Each top-level folder is its own path entry (package_dir), so walk each one.
    mod = importlib.import_module(pkg)
    names |= {m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".")}
names = sorted(n for n in names if not n.endswith("__main__"))
# Training and conversion modules may import TensorFlow/ONNX at module level: import them last.
names.sort(key=lambda n: n.startswith(("leukedge.trainer", "leukedge.converters")))
report = {}
for name in names:
    before = {m.split(".")[0] for m in sys.modules}
    importlib.import_module(name)
    new = {m.split(".")[0] for m in sys.modules} - before
    allowed = set() if not name.startswith(("leukedge.trainer", "leukedge.converters")) else HEAVY - HARDWARE
    bad = (new & HEAVY) - allowed
    if bad:
        report[name] = sorted(bad)
print(json.dumps({"modules": len(names), "bad": report}))
""" % (HEAVY, HARDWARE)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["modules"] > 10
    assert result["bad"] == {}, f"modules that load heavy libraries at import: {result['bad']}"
