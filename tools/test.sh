#!/usr/bin/env bash
# The whole test suite from a fresh clone: system packages, a virtual environment
# with every extra that installs on x86-64 Linux, then pytest.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/system_deps.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[all,dev]'
exec .venv/bin/python -m pytest "$@"
