#!/usr/bin/env bash
# The whole test suite from a fresh clone: system packages, a virtual environment
# with every extra that installs on x86-64 Linux, then pytest.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/system_deps.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 'setuptools>=69' wheel >/dev/null
.venv/bin/python -m pip install -q -e '.[all,dev]'
# TensorRT's type stubs, for the mypy check of the TensorRT code.  Not an extra: pip would pull in
# the tensorrt wheel (NVIDIA's host); and not site-packages: a stub-only 'tensorrt' would import.
[ -f .typings/tensorrt-stubs/tensorrt/__init__.pyi ] ||
  .venv/bin/python -m pip install -q --no-deps --target .typings/tensorrt-stubs 'tensorrt-stubs==10.13.0.35.1'
exec .venv/bin/python -m pytest "$@"
