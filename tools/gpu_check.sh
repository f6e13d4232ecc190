#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU and no network, in a few minutes.
#
#   tools/gpu_check.sh
#
# 1. makes (or reuses) .gpu/venv, a virtual environment over the system's packages;
# 2. installs pycuda if it is absent: built from its sdist by tools/build_pycuda.py (all cores),
#    with its pure-Python dependencies, from WHEELS (default: .gpu/wheels, else ../shared/wheels);
#    the built wheel is kept in .gpu/built, so a rerun with .gpu carried along skips the build;
# 3. installs this repository into it (editable, no dependencies);
# 4. runs the `gpu` and `tensorrt` tests (CUDA LoG parity on real cells, the pipeline with CUDA
#    preprocessing, the Jetson example), the GPU path (the CUDA LoG written into a device buffer /
#    TensorRT's input binding, host copies counted), the kernel timing table next to the CPU reference,
#    and the pipeline benchmark with --preprocess cuda and cpu.
#
# Environment: PYTHON (default python3), WHEELS, DATA (default ../shared/data, else .gpu/data),
# BENCH_SECONDS (default 10), BUILD_JOBS (default: all cores).
# Exit status: 0 when every step passed; the first failing step's status otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
GPU_DIR=$REPO/.gpu
PY=${PYTHON:-python3}
BENCH_SECONDS=${BENCH_SECONDS:-10}
T0=$(date +%s)
STATUS=0
mkdir -p "$GPU_DIR"

step() { echo; echo "== [$(($(date +%s) - T0)) s] $*"; }
fail() { echo "!! $*"; [ "$STATUS" -ne 0 ] || STATUS=${2:-1}; }

if [ -z "${WHEELS:-}" ]; then
  if [ -d "$GPU_DIR/wheels" ]; then WHEELS=$GPU_DIR/wheels; else WHEELS=$REPO/../shared/wheels; fi
fi
if [ -z "${DATA:-}" ]; then
  if [ -d "$REPO/../shared/data" ]; then DATA=$REPO/../shared/data; else DATA=$GPU_DIR/data; fi
fi
export LEUKEDGE_SHARED_DATA=$DATA
for d in /usr/local/cuda/bin "${CUDA_HOME:-/nonexistent}/bin"; do
  if [ -x "$d/nvcc" ] && ! command -v nvcc >/dev/null 2>&1; then export PATH="$d:$PATH"; fi
done

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1 || echo "nvidia-smi: not available"
$PY --version
command -v nvcc >/dev/null 2>&1 && nvcc --version | tail -2 || echo "nvcc: not found (the CUDA LoG needs it to compile its kernel)"
echo "wheels: $WHEELS ($(ls "$WHEELS" 2>/dev/null | tr '\n' ' '))"
echo "data:   $DATA ($( [ -d "$DATA/cnmc_sample" ] && echo present || echo 'absent: real-image tests will skip'))"

step "virtual environment $GPU_DIR/venv"
if ! "$GPU_DIR/venv/bin/python" -c "" 2>/dev/null; then  # absent, or carried from another machine
  rm -rf "$GPU_DIR/venv"
  $PY -m venv --system-site-packages "$GPU_DIR/venv" 2>/dev/null \
    || $PY -m venv --system-site-packages --without-pip "$GPU_DIR/venv" \
    || { fail "cannot create a virtual environment with $PY"; exit 2; }
fi
VPY=$GPU_DIR/venv/bin/python
# A venv does not see user-site packages (pip install --user), where some machines keep numpy and
# OpenCV: list every site folder of the base Python in a .pth, after the venv's own.
"$PY" -c "import site, sys; print('\n'.join(p for p in sys.path if p.endswith(('site-packages', 'dist-packages'))))" \
  >"$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz_base_python.pth"
pipi() {  # pip install into the venv, with the venv's pip or the system's (pip --python)
  if "$VPY" -m pip --version >/dev/null 2>&1; then "$VPY" -m pip install -q "$@"; else $PY -m pip --python "$VPY" install -q "$@"; fi
}

step "python packages"
missing_pkgs() {  # pip names of what the tests and tools import and this Python lacks
  "$VPY" -c "
import importlib.util as u
need = {'numpy': 'numpy', 'cv2': 'opencv-python-headless', 'PIL': 'pillow', 'click': 'click',
        'onnxruntime': 'onnxruntime', 'pytest': 'pytest', 'setuptools': 'setuptools', 'wheel': 'wheel',
        'typing_extensions': 'typing-extensions'}
print(' '.join(pkg for mod, pkg in need.items() if u.find_spec(mod) is None))"
}
for pkg in $(missing_pkgs); do  # carried as wheels? install them offline
  pipi --no-index --find-links "$WHEELS" "$pkg" >/dev/null 2>&1 && echo "installed $pkg from $WHEELS"
done
still=$(missing_pkgs)
if [ -n "$still" ]; then
  tag=$("$VPY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  fail "missing, and not in $WHEELS: $still -- carry their wheels ($tag, with dependencies) in .gpu/wheels" 3
fi
"$VPY" -c "import onnx" 2>/dev/null && echo "onnx: present" || echo "onnx: absent (tests build their tiny model with it; a bundle in .gpu/bundle or the reference bundle is used instead)"

step "pycuda"
if ! "$VPY" -c "import pycuda.driver" 2>/dev/null; then
  tag=$("$VPY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  built=$(ls "$GPU_DIR"/built/pycuda-*-"$tag"-*.whl 2>/dev/null | tail -1)  # a wheel for this Python only
  if [ -z "$built" ]; then
    sdist=$(ls "$WHEELS"/pycuda-*.tar.gz 2>/dev/null | tail -1)
    [ -n "$sdist" ] || { fail "no pycuda sdist in $WHEELS" 4; exit 4; }
    echo "building $(basename "$sdist") on $(nproc) cores ..."
    "$VPY" "$REPO/tools/build_pycuda.py" "$sdist" "$GPU_DIR/built" || { fail "pycuda build failed" 4; exit 4; }
    built=$(ls "$GPU_DIR"/built/pycuda-*-"$tag"-*.whl | tail -1)
  fi
  for dep in platformdirs pytools; do
    "$VPY" -c "import $dep" 2>/dev/null || pipi --no-index --no-deps --find-links "$WHEELS" "$dep" || fail "cannot install $dep from $WHEELS"
  done
  for dep in siphash24 mako; do  # pytools' persistent cache and pycuda's templates; not used by leukedge
    "$VPY" -c "import $dep" 2>/dev/null || pipi --no-index --find-links "$WHEELS" "$dep" >/dev/null 2>&1 \
      || echo "($dep not installed: optional here)"
  done
  pipi --no-index --no-deps "$built" || fail "cannot install $built" 4
fi
"$VPY" -c "
import pycuda, pycuda.driver as cuda
cuda.init(); d = cuda.Device(0)
print(f'pycuda {pycuda.VERSION_TEXT}: {cuda.Device.count()} device(s); 0: {d.name()} sm_{d.compute_capability()[0]}{d.compute_capability()[1]}, driver CUDA {cuda.get_driver_version()}')
" || fail "pycuda does not work" 4

step "leukedge (editable, no dependencies)"
pipi --no-deps --no-build-isolation -e "$REPO" >/dev/null || fail "pip install -e . failed" 5
"$GPU_DIR/venv/bin/leukedge" doctor || true

step "model for the pipeline runs"
if [ -f "$REPO/sdk/models/reference/manifest.json" ]; then
  MODEL=reference
elif [ -f "$GPU_DIR/bundle/manifest.json" ]; then
  MODEL=$GPU_DIR/bundle
elif "$VPY" -c "import onnx" 2>/dev/null; then
  (cd "$REPO" && "$VPY" -m tests.device.device_helpers "$GPU_DIR/bundle") && MODEL=$GPU_DIR/bundle
else
  MODEL=""
  echo "no model: no reference bundle, no .gpu/bundle, no onnx to build one; pipeline runs are skipped"
fi
echo "model: ${MODEL:-none}"

step "pytest -m gpu (real-image parity, kernel times, pipeline with CUDA preprocessing)"
out=$(cd "$REPO" && "$VPY" -m pytest tests/device -m gpu -p no:cacheprovider -q -rs -s 2>&1); rc=$?
echo "$out" | grep -v "^$"
[ "$rc" -eq 0 ] || fail "gpu tests failed" 6
if echo "$out" | tail -1 | grep -q skipped; then  # here a skipped gpu test is a failure: it must run
  fail "gpu tests were skipped (see the reasons above; real images: DATA=$DATA)" 6
fi
step "pytest -m tensorrt (skips where TensorRT is absent)"
(cd "$REPO" && "$VPY" -m pytest tests/device -m tensorrt -p no:cacheprovider -q -rs) || fail "tensorrt tests failed" 6

step "GPU path: CUDA LoG into the engine's input binding, no host round trip (fakes, then this GPU; copies counted)"
out=$(cd "$REPO" && "$VPY" -m pytest tests/device/test_gpu_path.py -p no:cacheprovider -q -rs -s 2>&1); rc=$?
echo "$out" | grep -v "^$"
[ "$rc" -eq 0 ] || fail "gpu path tests failed" 6
echo "$out" | grep -q "CUDA LoG into a device buffer" || fail "the GPU-path test on this GPU did not run (see the skips above)" 6

step "examples marked gpu/tensorrt (the Jetson example for real; skips where TensorRT is absent)"
(cd "$REPO" && "$VPY" -m pytest tests/examples -m "gpu or tensorrt" -p no:cacheprovider -q -rs) || fail "example tests failed" 6

step "CUDA LoG kernel times next to the CPU reference"
"$VPY" "$REPO/benchmarks/pipeline_cuda_log.py" "$DATA/cnmc_sample" --json "$GPU_DIR/cuda_log.json" || fail "kernel benchmark failed or out of tolerance" 7

if [ -n "$MODEL" ]; then
  for mode in cuda cpu; do
    step "pipeline, --preprocess $mode, ${BENCH_SECONDS} s per run"
    "$VPY" "$REPO/benchmarks/pipeline_synthetic.py" --model "$MODEL" --preprocess "$mode" --seconds "$BENCH_SECONDS" \
      --json "$GPU_DIR/pipeline_$mode.json" | tail -4 || fail "pipeline benchmark ($mode) failed" 8
  done
  step "leukedge screen --preprocess cuda"
  "$GPU_DIR/venv/bin/leukedge" screen "synthetic://?frames=20&pool=2" --model "$MODEL" --preprocess cuda -q \
    --out "$GPU_DIR/screen_cuda.jsonl" --overwrite || fail "screen --preprocess cuda failed" 9
fi

step "done in $(($(date +%s) - T0)) s: $([ "$STATUS" -eq 0 ] && echo 'all steps passed' || echo "FAILED (status $STATUS)")"
exit "$STATUS"
