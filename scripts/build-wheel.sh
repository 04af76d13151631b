#!/usr/bin/env bash
# Builds the installable MedLens package from this checkout, offline: dist/medlens-<version>-py3-none-any.whl
# and dist/medlens-<version>.tar.gz (or into the folder given as $1). setuptools' build backend is called
# directly, with no isolated build environment, so nothing is downloaded. The wheel carries the shipped
# model (models/: the ONNX extractor, the heads and the model card) and the server's web page; the script
# checks that before it says where the files are. Install with any of:
#   pip install dist/medlens-*.whl    pipx install dist/medlens-*.whl    uv tool install dist/medlens-*.whl
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
out=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
rm -rf build  # setuptools reuses build/lib, which would keep modules deleted since the last build
"$PY" - "$out" <<'PYEOF'
import sys
import zipfile
from pathlib import Path

import setuptools
import setuptools.build_meta as backend

if tuple(int(p) for p in setuptools.__version__.split(".")[:2]) < (70, 1):
    try:
        import wheel  # noqa: F401  (older setuptools build wheels through it)
    except ImportError:
        sys.exit(f"build-wheel: setuptools {setuptools.__version__} cannot build wheels by itself; "
                 f"run: {sys.executable} -m pip install 'setuptools>=70.1'")

out = Path(sys.argv[1])
sdist = out / backend.build_sdist(str(out))
wheel = out / backend.build_wheel(str(out))
names = set(zipfile.ZipFile(wheel).namelist())
needed = ["medlens/models/features.onnx", "medlens/models/head.ubj", "medlens/models/modality.ubj",
          "medlens/models/model_card.json", "medlens/serve/page/index.html", "medlens/native/host.py"]
missing = [n for n in needed if n not in names]
if missing:
    sys.exit(f"build-wheel: {wheel.name} lacks {missing}")
for path in (wheel, sdist):
    print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
PYEOF
rm -rf build
