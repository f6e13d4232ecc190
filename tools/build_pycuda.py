"""Build a pycuda wheel from its source distribution, on every core, for tools/gpu_check.sh.

pycuda is published only as source.  setuptools compiles its ~40 C++ files
one at a time (minutes); this compiles them in parallel and needs no network.

    python tools/build_pycuda.py SDIST.tar.gz OUT_DIR

Finds the CUDA toolkit (``$CUDA_HOME``, ``$CUDA_PATH``, ``/usr/local/cuda``, or
next to nvcc) and the driver's ``libcuda`` (``$LIBCUDA_DIR``, the toolkit's
stubs, or ``ldconfig``), builds without cuRAND when the toolkit has no
libcurand, and writes the wheel to OUT_DIR.  Needs setuptools, wheel (or
setuptools >= 70.1) and numpy in the running Python.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import List, Optional

# Runs in the unpacked sdist: make setuptools' compiler parallel, then run setup.py as usual.
BOOT = r"""
import os, sys
from concurrent.futures import ThreadPoolExecutor
import setuptools  # puts setuptools' distutils in place (Python 3.12 has none of its own)
from distutils import ccompiler

def parallel_compile(self, sources, output_dir=None, macros=None, include_dirs=None, debug=False,
                     extra_preargs=None, extra_postargs=None, depends=None):
    macros, objects, extra_postargs, pp_opts, build = self._setup_compile(
        output_dir, macros, include_dirs, sources, depends, extra_postargs)
    cc_args = self._get_cc_args(pp_opts, debug, extra_preargs)
    def one(obj):
        if obj in build:
            src, ext = build[obj]
            self._compile(obj, src, ext, cc_args, extra_postargs, pp_opts)
    with ThreadPoolExecutor(int(os.environ.get("BUILD_JOBS") or os.cpu_count() or 1)) as pool:
        list(pool.map(one, objects))
    return objects

for klass in type(ccompiler.new_compiler()).__mro__:
    if "compile" in vars(klass):
        klass.compile = parallel_compile
        break
sys.argv = ["setup.py"] + sys.argv[1:]
exec(compile(open("setup.py").read(), "setup.py", "exec"), {"__name__": "__main__", "__file__": "setup.py"})
"""


def cuda_root() -> Path:
    nvcc = shutil.which("nvcc")
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    if nvcc:
        candidates.append(str(Path(os.path.realpath(nvcc)).parent.parent))
    for c in candidates:
        if c and (Path(c) / "include" / "cuda.h").is_file():
            return Path(c)
    sys.exit("build_pycuda: no CUDA toolkit (include/cuda.h) under $CUDA_HOME, $CUDA_PATH, /usr/local/cuda or nvcc")


def libcuda_dir(root: Path, scratch: Path) -> Optional[Path]:
    """A folder holding ``libcuda.so`` to link against (the driver's, or the toolkit's stub)."""
    env = os.environ.get("LIBCUDA_DIR")
    if env:
        return Path(env)
    for d in (root / "lib64" / "stubs", root / "lib" / "stubs", root / "targets" / "x86_64-linux" / "lib" / "stubs"):
        if (d / "libcuda.so").exists():
            return d
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        listing = ""
    for line in listing.splitlines():
        if "libcuda.so" in line and "=>" in line:
            lib = Path(line.split("=>")[1].strip())
            if (lib.parent / "libcuda.so").exists():
                return lib.parent
            link = scratch / "libcuda"  # only libcuda.so.1: give the linker an unversioned name
            link.mkdir(exist_ok=True)
            (link / "libcuda.so").unlink(missing_ok=True)
            (link / "libcuda.so").symlink_to(lib)
            return link
    return None


def siteconf(root: Path, cuda_lib: Path) -> str:
    libdirs: List[str] = [str(cuda_lib)] + [str(root / d) for d in ("lib64", "lib") if (root / d).is_dir()]
    has_curand = any(glob.glob(str(root / d / "libcurand.so*")) for d in ("lib64", "lib"))
    return "\n".join(
        [
            f"CUDA_ROOT = {str(root)!r}",
            f"CUDA_INC_DIR = [{str(root / 'include')!r}]",
            f"CUDADRV_LIB_DIR = {libdirs!r}",
            f"CUDART_LIB_DIR = {libdirs!r}",
            f"CUDA_ENABLE_CURAND = {has_curand!r}",
            "USE_SHIPPED_BOOST = True",
            "",
        ]
    )


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    sdist, out = Path(argv[0]), Path(argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    root = cuda_root()
    scratch = Path(tempfile.mkdtemp(prefix="pycuda-build-", dir=out.parent))
    try:
        lib = libcuda_dir(root, scratch)
        if lib is None:
            sys.exit("build_pycuda: no libcuda.so (NVIDIA driver) found; set LIBCUDA_DIR")
        with tarfile.open(sdist) as tar:
            tar.extractall(scratch)
        src = next(p for p in scratch.iterdir() if p.is_dir() and (p / "setup.py").exists())
        conf = siteconf(root, lib)
        (src / "siteconf.py").write_text(conf)
        print(f"build_pycuda: CUDA {root}, libcuda from {lib}\n{conf}", flush=True)
        env = dict(os.environ, PATH=f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        cmd = [sys.executable, "-c", BOOT, "bdist_wheel", "-d", str(out)]
        done = subprocess.run(cmd, cwd=src, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            print(done.stdout[-6000:])
            return done.returncode
        wheels = sorted(out.glob("pycuda-*.whl"))
        print(f"build_pycuda: built {wheels[-1].name}")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
