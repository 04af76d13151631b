"""Serving needs no torch: serve and classify in a subprocess never import it, and a clean
virtualenv with only the core install classifies real images and answers /v1/health."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fixtures.data import REPO_ROOT, image

XRAY = "medical/xray/pydicom-data_RG1_J2KI.jpg"
CHART = "non-medical/chart/charts-sklearn-data_area_0.png"
TORCH_MODULES = ("torch", "torchvision")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _imported(importtime_stderr: str) -> set[str]:
    """Top-level packages named in `python -X importtime` output."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def _wait_for_health(port: int, token: str, proc: subprocess.Popen, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/health", headers={"Authorization": f"Bearer {token}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return json.loads(resp.read())
        except OSError:
            time.sleep(0.3)
    raise AssertionError("server did not answer /v1/health in time")


def _token_when_written(config_dir: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not (config_dir / "token").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    return (config_dir / "token").read_text().strip()


def _classify_upload(port: int, token: str, path: Path) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/classify/image", data=path.read_bytes(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())


def test_classify_never_imports_torch(tmp_path: Path):
    env = {**os.environ, "MEDLENS_CONFIG_DIR": str(tmp_path / "cfg")}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "medlens.cli", "classify", "--json", "--no-progress",
         str(image(XRAY)), str(image(CHART))],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(done.stdout)
    assert [r["label"] for r in rows] == ["medical", "non-medical"]
    imported = _imported(done.stderr)
    assert "onnxruntime" in imported and "xgboost" in imported
    assert not imported & set(TORCH_MODULES), sorted(imported & set(TORCH_MODULES))


LOAD_AND_CLASSIFY = """
import json, sys
from PIL import Image
from medlens.model.classifier import Classifier
preds = Classifier.load(device="cpu").classify([Image.open(p) for p in sys.argv[1:]])
print(json.dumps({"labels": [p.label for p in preds], "modules": sorted(sys.modules)}))
"""


def test_loading_the_served_model_imports_no_training_module_and_no_torch():
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_CLASSIFY, str(image(XRAY)), str(image(CHART))],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["labels"] == ["medical", "non-medical"]
    modules = set(out["modules"])
    assert "medlens.model.classifier" in modules and "onnxruntime" in modules
    assert not {m for m in modules if m == "medlens.training" or m.startswith("medlens.training.")}
    assert not {m for m in modules if m.split(".")[0] in TORCH_MODULES}


def test_serve_never_imports_torch(tmp_path: Path):
    port = _free_port()
    env = {**os.environ, "MEDLENS_CONFIG_DIR": str(tmp_path / "cfg"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "medlens.cli", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        token = _token_when_written(tmp_path / "cfg")
        health = _wait_for_health(port, token, proc)
        assert health["status"] == "ok" and health["model"]["backbone"] == "mobilenet_v2"
        assert _classify_upload(port, token, image(XRAY))["results"][0]["label"] == "medical"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=60)
    imported = _imported(stderr)
    assert "aiohttp" in imported and "onnxruntime" in imported
    assert not imported & set(TORCH_MODULES), sorted(imported & set(TORCH_MODULES))


@pytest.mark.slow
def test_the_wheel_alone_in_a_clean_virtualenv_serves_classifies_and_installs_the_host(tmp_path: Path):
    """What a user gets from `pip install medlens-<version>-py3-none-any.whl` (built by
    scripts/build-wheel.sh; pipx and uv install the same wheel): the package with the shipped model
    inside and its core dependencies only, run away from the checkout."""
    built = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "build-wheel.sh"), str(tmp_path / "dist")],
                           capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("medlens-*-py3-none-any.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    away = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # else pip sees the checkout's medlens
    t0 = time.monotonic()
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(wheel)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=away,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    print(f"\nwheel {wheel.stat().st_size / 1e6:.1f} MB; pip install into a clean virtualenv {time.monotonic() - t0:.1f} s")
    where = subprocess.run([str(py), "-c", "import medlens, pathlib; print(pathlib.Path(medlens.__file__).parent)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    package = Path(where.stdout.strip())
    assert package.is_relative_to(venv) and (package / "models" / "features.onnx").is_file(), where.stdout + where.stderr
    probe = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in ('torch', 'torchvision') if u.find_spec(m)])"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "[]", "the core install pulled in torch"
    env = {**os.environ, "MEDLENS_CONFIG_DIR": str(tmp_path / "cfg"), "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)
    medlens = venv / "bin" / "medlens"
    done = subprocess.run([str(medlens), "classify", "--json", "--no-progress", str(image(XRAY)), str(image(CHART))],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r["label"] for r in json.loads(done.stdout)] == ["medical", "non-medical"]
    port = _free_port()
    proc = subprocess.Popen([str(medlens), "serve", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        token = _token_when_written(tmp_path / "cfg")
        health = _wait_for_health(port, token, proc)
        assert health["status"] == "ok" and health["device"] == "cpu"
        assert _classify_upload(port, token, image(XRAY))["results"][0]["label"] == "medical"
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    home = tmp_path / "home"
    done = subprocess.run([str(medlens), "install", "--home", str(home)], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    launcher = home / ".local" / "share" / "medlens" / "native-host"
    assert str(py) in launcher.read_text() and "PYTHONPATH" not in launcher.read_text()
    body = b'{"type": "status"}'
    answer = subprocess.run([str(launcher)], input=len(body).to_bytes(4, sys.byteorder) + body, capture_output=True,
                            env=env, timeout=60, cwd=tmp_path)
    assert answer.returncode == 0 and b'"ok":true' in answer.stdout, answer.stdout + answer.stderr
