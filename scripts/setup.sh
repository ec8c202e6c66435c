#!/usr/bin/env bash
# Set up hwcomp on a fresh Debian/Ubuntu machine with Python 3.11: simulators and yosys from apt,
# everything else from PyPI into .venv. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v iverilog >/dev/null 2>&1 || need_apt+=(iverilog)
command -v yosys >/dev/null 2>&1 || need_apt+=(yosys)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# torch first and pinned: a CPU wheel on the build machines; an unpinned resolve would pull a CUDA build.
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[zoo,tvm,rtl,test]"
python -c "import hwcomp, tvm, cocotb, torch; print('hwcomp', hwcomp.__version__, '| tvm', tvm.__version__, '| torch', torch.__version__)"
