"""The rules the one ingest path keeps: `ingest` imports neither the pipeline, the model nor the
server; every error code any module can raise is in errors.HTTP_STATUS (whose README table
test_bad_inputs keeps equal); one suffix table; one folder expansion for classify and batch."""

from __future__ import annotations

import ast
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import medlens
import medlens.ingest
from medlens.errors import HTTP_STATUS, MedLensError
from medlens.ingest.load import read_local
from medlens.ingest.sources import SUFFIX_KINDS, expand_inputs, suffix_of

PACKAGE = Path(medlens.__file__).parent


def test_ingest_imports_neither_pipeline_model_nor_serve() -> None:
    modules = sorted(f"medlens.ingest.{m.name}" for m in pkgutil.iter_modules(medlens.ingest.__path__))
    assert "medlens.ingest.load" in modules and "medlens.ingest.sources" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = [m for m in sys.modules if m.startswith(('medlens.pipeline', 'medlens.model', 'medlens.serve', "
        "'medlens.batch', 'medlens.commands'))]\n"
        "print(','.join(sorted(bad)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "", f"ingest imports {proc.stdout.strip()}"


def _raised_codes() -> dict[str, str]:
    """Every literal code passed to MedLensError (or a subclass) anywhere in the package."""
    found: dict[str, str] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            first = node.args[0]
            if name.endswith("Error") and isinstance(first, ast.Constant) and isinstance(first.value, str):
                if first.value.islower() and " " not in first.value and "_" in first.value or first.value in HTTP_STATUS:
                    found.setdefault(first.value, str(path.relative_to(PACKAGE)))
    return found


def test_every_code_raised_anywhere_is_listed() -> None:
    codes = _raised_codes()
    assert {"no_images", "missing_dependency", "read_failed", "not_found"} <= set(codes)
    missing = {code: where for code, where in codes.items() if code not in HTTP_STATUS}
    assert missing == {}, f"codes raised but not in errors.HTTP_STATUS: {missing}"


def test_one_suffix_table() -> None:
    assert suffix_of("a/B.TAR.GZ") == ".tar.gz" and suffix_of("x.JPG") == ".jpg" and suffix_of("noext") == ""
    for suffix in (".docx", ".pptx", ".odp", ".epub", ".cbz", ".zip", ".tar", ".dcm", ".mp4", ".webm", ".avif", ".jp2"):
        assert suffix in SUFFIX_KINDS, suffix
    # (training/dataset.py lists the training folders' image files: training data, not inputs)
    copies = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if '".jpeg"' in p.read_text(encoding="utf-8")]
    assert [p for p in copies if not p.startswith("training/")] == ["ingest/sources.py"]


def test_one_expansion_and_one_file_reader(tmp_path: Path) -> None:
    """classify and batch both expand with sources.expand_inputs; empty folders, missing files and
    unreadable files give the same codes whoever reads them (read_local)."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.png").write_bytes(b"x")
    (tmp_path / "a.docx").write_bytes(b"x")
    (tmp_path / "notes.md").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    listed = tmp_path / "list.txt"
    listed.write_text("# a comment\nsub/b.png\n\nmissing.jpg\n", encoding="utf-8")
    sources = expand_inputs([str(tmp_path / "sub"), str(tmp_path / "a.docx"), str(tmp_path / "empty"), str(listed)])
    assert sources == [str(tmp_path / "sub" / "b.png"), str(tmp_path / "a.docx"), str(tmp_path / "empty"),
                       str(tmp_path / "missing.jpg")]
    codes = {}
    for path in (tmp_path / "empty", tmp_path / "missing.jpg"):
        with pytest.raises(MedLensError) as info:
            read_local(str(path), 1000)
        codes[path.name] = info.value.code
    assert codes == {"empty": "not_found", "missing.jpg": "not_found"}
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(MedLensError) as info:
        read_local(str(tmp_path / "pipe.png"), 1000)  # refused before open: opening a pipe would block
    assert info.value.code == "read_failed"
    with pytest.raises(MedLensError) as info:
        read_local(str(tmp_path / "a.docx"), 0)
    assert info.value.code == "too_large"
