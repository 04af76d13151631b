"""`medlens` in-process (classify, token, parsing) and `medlens serve` as a real process."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fixtures.data import SHARED_DATA, image
from fixtures.site import TestSite
from medlens import cli
from medlens.commands import COMMANDS

XRAY = "medical/xray/pydicom-data_RG1_J2KI.jpg"
MRI = "medical/mri/itk-examples_BrainT1Slice.jpg"
CHART = "non-medical/chart/charts-sklearn-data_area_0.png"
SCREENSHOT = "non-medical/screenshot/debian-htmldocs-screens_api_addons_0.png"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def classify_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    code, out, _err = run_cli(capsys, "classify", "--json", "--no-progress", *argv)
    return code, json.loads(out)


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every command's token and config.toml out of the real home."""
    path = tmp_path / "config"
    monkeypatch.setenv("MEDLENS_CONFIG_DIR", str(path))
    return path


# ---------------------------------------------------------------- classify


def test_classify_files_as_json(capsys: pytest.CaptureFixture[str], config_dir: Path) -> None:
    code, rows = classify_json(capsys, str(image(XRAY)), str(image(CHART)), str(image(MRI)))
    assert code == 0
    assert [r["source"] for r in rows] == [str(image(XRAY)), str(image(CHART)), str(image(MRI))]
    assert [r["label"] for r in rows] == ["medical", "non-medical", "medical"]
    for r in rows:
        assert set(r) == {"source", "status", "label", "probability", "modality", "error"}
        assert r["status"] == "ok" and r["error"] is None and 0 <= r["probability"] <= 1
    assert rows[0]["modality"] is not None and rows[1]["modality"] is None


def test_folders_are_searched_recursively_and_pdfs_expand(
    capsys: pytest.CaptureFixture[str], config_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "inbox"
    (folder / "scans" / "deeper").mkdir(parents=True)
    shutil.copy(image(XRAY), folder / "scans" / "deeper" / "a-xray.JPG")
    shutil.copy(image(SCREENSHOT), folder / "b-screen.png")
    shutil.copy(SHARED_DATA / "docs" / "alpha-cmyk.pdf", folder / "c-doc.pdf")
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    code, rows = classify_json(capsys, str(folder))
    assert code == 0
    assert [Path(r["source"]).name for r in rows] == ["b-screen.png", "c-doc.pdf", "c-doc.pdf", "a-xray.JPG"]
    assert [r["label"] for r in (rows[0], rows[3])] == ["non-medical", "medical"]
    assert [(r["page"], r["index"]) for r in rows[1:3]] == [(1, 1), (1, 2)]
    assert "page" not in rows[0]


def test_a_pdf_gives_a_row_per_image(capsys: pytest.CaptureFixture[str], config_dir: Path) -> None:
    code, rows = classify_json(capsys, str(SHARED_DATA / "docs" / "report.pdf"))
    assert code == 0 and len(rows) == 16
    assert all(r["source"] == str(SHARED_DATA / "docs" / "report.pdf") for r in rows)
    assert sorted((r["page"], r["index"]) for r in rows) == [(r["page"], r["index"]) for r in rows]


def test_failures_are_reported_after_everything_else(capsys: pytest.CaptureFixture[str], config_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(image(XRAY).read_bytes()[:500])
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    code, rows = classify_json(
        capsys, str(tmp_path / "missing.png"), str(image(XRAY)), str(broken), str(SHARED_DATA / "docs" / "encrypted.pdf"),
        str(SHARED_DATA / "docs" / "README.md"), str(empty), "ftp://example.org/x.png", str(image(CHART)),
    )
    assert code == 1
    assert [(r["status"], r["error"] and r["error"]["code"]) for r in rows] == [
        ("error", "not_found"), ("ok", None), ("error", "decode_failed"), ("error", "pdf_encrypted"),
        ("error", "not_an_image"), ("error", "not_found"), ("error", "scheme_not_allowed"), ("ok", None),
    ]
    assert [rows[1]["label"], rows[7]["label"]] == ["medical", "non-medical"]


def test_every_file_a_folder_walk_meets_gets_a_row(capsys: pytest.CaptureFixture[str], config_dir: Path, tmp_path: Path) -> None:
    """A dangling link, an SVG, a named pipe and an unreadable file each get a row with their own
    code; before, the first three were left out silently and I/O errors were called not_found."""
    from fixtures.site import SVG

    folder = tmp_path / "inbox"
    folder.mkdir()
    shutil.copy(image(XRAY), folder / "a-xray.jpg")
    (folder / "b-dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (folder / "c-drawing.svg").write_bytes(SVG)
    os.mkfifo(folder / "d-pipe.png")
    (folder / "e-notes.txt").write_text("not an input")
    code, rows = classify_json(capsys, str(folder), "/proc/self/mem")
    assert code == 1
    got = [(Path(r["source"]).name, r["status"], r["error"] and r["error"]["code"]) for r in rows]
    assert got == [
        ("a-xray.jpg", "ok", None),
        ("b-dangling.jpg", "error", "not_found"),
        ("c-drawing.svg", "error", "unsupported_format"),
        ("d-pipe.png", "error", "read_failed"),
        ("mem", "error", "read_failed"),
    ]
    assert str(tmp_path / "nowhere.jpg") in rows[1]["error"]["message"]


def test_a_damaged_pdf_says_it_was_repaired(capsys: pytest.CaptureFixture[str], config_dir: Path) -> None:
    damaged = SHARED_DATA / "docs" / "malformed.pdf"
    code, out, err = run_cli(capsys, "classify", "--json", "--no-progress", str(damaged))
    rows = json.loads(out)
    assert code == 0 and 0 < len(rows) < 16
    assert f"{damaged} is damaged; only the {len(rows)} image(s) that could be recovered are listed" in err


def test_tiny_images_are_skipped_not_failed(capsys: pytest.CaptureFixture[str], config_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8), "white").save(tiny)
    code, rows = classify_json(capsys, str(tiny))
    assert code == 0
    assert (rows[0]["status"], rows[0]["error"]["code"]) == ("skipped", "too_small")


def test_urls_images_pdfs_and_pages(capsys: pytest.CaptureFixture[str], config_dir: Path, test_site: TestSite) -> None:
    image_url = test_site.url(f"/images/{XRAY}")
    pdf_url = test_site.url("/docs/alpha-cmyk.pdf")
    page_url = test_site.url("/docs/page-basic.html")
    code, rows = classify_json(capsys, "--allow-private", image_url, pdf_url, page_url, test_site.url("/special/status/404"))
    assert code == 1
    assert rows[0]["source"] == image_url and rows[0]["label"] == "medical"
    assert [r["source"] for r in rows[1:3]] == [pdf_url, pdf_url] and rows[1]["page"] == 1
    page_rows = rows[3:15]
    assert len(page_rows) == 12 and all(r["status"] == "ok" and r["source"].startswith(test_site.url("/images/")) for r in page_rows)
    assert (rows[15]["source"], rows[15]["error"]["code"]) == (test_site.url("/special/status/404"), "fetch_failed")


def test_urls_on_private_addresses_need_allow_private(capsys: pytest.CaptureFixture[str], config_dir: Path, test_site: TestSite) -> None:
    code, rows = classify_json(capsys, test_site.url(f"/images/{XRAY}"))
    assert code == 1 and rows[0]["error"]["code"] == "address_not_allowed"


def test_threshold_flag(capsys: pytest.CaptureFixture[str], config_dir: Path) -> None:
    _, low = classify_json(capsys, "--threshold", "0", str(image(CHART)))
    _, high = classify_json(capsys, "--threshold", "1", str(image(XRAY)))
    assert (low[0]["label"], high[0]["label"]) == ("medical", "non-medical")
    code, _out, err = run_cli(capsys, "classify", "--threshold", "7", str(image(XRAY)))
    assert code == 2 and "between 0 and 1" in err


def test_table_is_the_default_and_csv_on_request(capsys: pytest.CaptureFixture[str], config_dir: Path) -> None:
    code, out, err = run_cli(capsys, "classify", "--no-progress", str(image(XRAY)), str(SHARED_DATA / "docs" / "encrypted.pdf"))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["SOURCE", "LABEL", "PROB", "MODALITY", "NOTE"]
    assert image(XRAY).name in lines[1] and "medical" in lines[1]
    assert "error" in lines[2] and "pdf_encrypted" in lines[2]
    assert "2 results: 1 medical, 0 non-medical, 0 skipped, 1 failed" in err
    code, out, _ = run_cli(capsys, "classify", "--csv", "--no-progress", str(SHARED_DATA / "docs" / "alpha-cmyk.pdf"), "/nope")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["source", "member", "page", "index", "frame", "time_s", "dicom_modality", "role",
                             "status", "label", "probability", "modality", "error"]
    assert [(r["page"], r["index"]) for r in rows] == [("1", "1"), ("1", "2"), ("", "")]
    assert rows[2]["error"].startswith("not_found: ")


def test_progress_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str], config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medlens.commands import classify

    seen: dict[str, Any] = {}
    real = classify.tqdm

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        bar = real(*args, **{**kwargs, "disable": False})  # auto-disabled off a terminal, like here
        seen["bar"] = bar
        return bar

    monkeypatch.setattr(classify, "tqdm", spy)
    code, out, _ = run_cli(capsys, "classify", "--json", str(image(XRAY)), str(image(CHART)))
    assert code == 0 and len(json.loads(out)) == 2
    assert seen["file"] is sys.stderr and seen["total"] == 2 and seen["disable"] is None and seen["bar"].n == 2


# ---------------------------------------------------------------- token, flags, commands


def test_token_is_created_private_and_printed_the_same_each_time(capsys: pytest.CaptureFixture[str], config_dir: Path) -> None:
    code, first, _ = run_cli(capsys, "token")
    assert code == 0 and len(first.strip()) >= 43
    assert (config_dir / "token").read_text().strip() == first.strip()
    assert stat.S_IMODE((config_dir / "token").stat().st_mode) == 0o600
    assert run_cli(capsys, "token")[1] == first
    assert run_cli(capsys, "token", "--path")[1].strip() == str(config_dir / "token")


def test_global_config_dir_flag(capsys: pytest.CaptureFixture[str], config_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    _, token, _ = run_cli(capsys, "--config-dir", str(other), "token")
    assert (other / "token").read_text() == token


def test_settings_layering_and_bad_settings(capsys: pytest.CaptureFixture[str], config_dir: Path) -> None:
    code, _, err = run_cli(capsys, "--set", "no_such_setting=1", "token")
    assert code == 2 and "no_such_setting" in err
    code, _, err = run_cli(capsys, "--set", "max_batch=many", "token")
    assert code == 2 and "max_batch" in err
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.toml").write_text("min_side = 5000\n")  # config file: every image is too small
    _, rows = classify_json(capsys, str(image(XRAY)))
    assert rows[0]["status"] == "skipped"
    code, out, _ = run_cli(capsys, "--set", "min_side=16", "classify", "--json", str(image(XRAY)))  # flags beat the file
    assert code == 0 and json.loads(out)[0]["status"] == "ok"


def test_every_command_module_is_registered() -> None:
    parser = cli.build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    present = [name for name in COMMANDS if cli._command_module(name) is not None]
    assert {"serve", "classify", "token"} <= set(present)
    assert list(choices) == present


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys)
    assert code == 2 and "classify" in err


# ---------------------------------------------------------------- serve, as a real process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_serve_listens_explains_pairing_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "MEDLENS_CONFIG_DIR": str(tmp_path / "cfg"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "medlens.cli", "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        banner = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            banner.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(banner)
        assert f"listening on http://127.0.0.1:{port}" in text, text
        assert "medlens token" in text
        token = (tmp_path / "cfg" / "token").read_text().strip()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/v1/health", headers={"Authorization": f"Bearer {token}"}) as resp:
                health = await resp.json()
            async with session.post(f"http://127.0.0.1:{port}/v1/classify", json={"urls": []}) as resp:
                unauthorized = resp.status
        assert health["paired"] is True and unauthorized == 401
        assert f"open http://127.0.0.1:{port}/?token={token}" in text and "medlens page" in text
        async with aiohttp.ClientSession() as session:  # what the page's script does with that address
            own = {"Origin": f"http://127.0.0.1:{port}"}
            async with session.post(f"http://127.0.0.1:{port}/v1/session", headers={**own, "Authorization": f"Bearer {token}"}) as resp:
                page_session = (await resp.json())["session"]
            async with session.post(f"http://127.0.0.1:{port}/v1/classify", json={"urls": []},
                                    headers={**own, "Authorization": f"Bearer {page_session}"}) as resp:
                assert resp.status == 200
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, text + rest
        assert "stopped" in rest and "Traceback" not in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_reports_a_taken_port(capsys: pytest.CaptureFixture[str], config_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(capsys, "serve", "--port", str(port))
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in err


# ---------------------------------------------------------------- a config folder that cannot be written
#
# chmod does not stop root, so these make the folder really unwritable: a file where it should be,
# or, in a private mount namespace of a child process (gone when it exits), a read-only bind mount
# or a tmpfs of 4 KiB that is already full.


@pytest.fixture(scope="session")
def private_mounts() -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a read-only or full folder in a private namespace")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace here (needs CAP_SYS_ADMIN): {probe.stderr.decode().strip()}")


def medlens_in_namespace(setup: str, script: str) -> subprocess.CompletedProcess[str]:
    """Run shell `setup` then `script` in a private mount namespace; `$MEDLENS` runs the CLI."""
    env = {**os.environ, "MEDLENS": f"{sys.executable} -m medlens.cli"}
    env.pop("MEDLENS_CONFIG_DIR", None)
    return subprocess.run(["unshare", "-m", "sh", "-c", f"set -e; {setup}; set +e; {script}"],
                          capture_output=True, text=True, env=env, timeout=120)


def assert_blames_the_token(err: str, token_file: Path, cause: str) -> None:
    assert "config_unwritable" in err and str(token_file) in err and cause in err, err
    assert "Traceback" not in err and "cannot listen" not in err, err


def test_token_when_the_config_folder_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = tmp_path / "xdg"
    xdg.write_text("a file, not a folder")
    monkeypatch.delenv("MEDLENS_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    code, out, err = run_cli(capsys, "token")
    assert (code, out) == (1, "")
    assert_blames_the_token(err, xdg / "medlens" / "token", f"{xdg} is a file, not a folder")


def test_token_in_a_read_only_config_folder(private_mounts: None, tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    done = medlens_in_namespace(f"mount --bind -o ro {folder} {folder}", f"$MEDLENS --config-dir {folder} token")
    assert done.returncode == 1 and done.stdout == "", done
    assert_blames_the_token(done.stderr, folder / "token", "read-only")


def test_token_on_a_full_disk_leaves_no_temporary_file(private_mounts: None, tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    done = medlens_in_namespace(
        f"mount -t tmpfs -o size=4k tmpfs {folder}; dd if=/dev/zero of={folder}/filler bs=1024 count=64 2>/dev/null || true",
        f"$MEDLENS --config-dir {folder} token; $MEDLENS --config-dir {folder} token; echo left:; ls -A {folder}",
    )
    assert done.stdout.split("left:", 1)[1].split() == ["filler"], done
    assert done.stderr.count("config_unwritable") == 2, done.stderr
    assert_blames_the_token(done.stderr, folder / "token", "no space left")


def test_serve_with_a_read_only_config_folder_blames_the_token_not_the_socket(private_mounts: None, tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    done = medlens_in_namespace(f"mount --bind -o ro {folder} {folder}",
                                f"$MEDLENS --config-dir {folder} serve --port {_free_port()}")
    assert done.returncode == 1, done
    assert_blames_the_token(done.stderr, folder / "token", "read-only")


def test_serve_and_classify_start_with_a_read_only_home(private_mounts: None, tmp_path: Path) -> None:
    """The model ships whole (ONNX extractor included): nothing is written under ~/.cache at start."""
    home, config = tmp_path / "home", tmp_path / "config"
    home.mkdir()
    config.mkdir()
    port = _free_port()
    probe = (f"{sys.executable} -c \"import json, urllib.request as u; "
             f"r = u.Request('http://127.0.0.1:{port}/v1/health', headers={{'Authorization': 'Bearer ' + open('{config}/token').read().strip()}}); "
             f"print(json.load(u.urlopen(r, timeout=5))['status'])\"")
    done = medlens_in_namespace(
        f"mount --bind -o ro {home} {home}; export HOME={home}; unset XDG_CACHE_HOME MEDLENS_CACHE_DIR",
        f"export HOME={home}; unset XDG_CACHE_HOME MEDLENS_CACHE_DIR; touch {home}/probe 2>/dev/null && echo home-writable; "
        f"$MEDLENS --config-dir {config} classify --json --no-progress {image(XRAY)}; "
        f"$MEDLENS --config-dir {config} serve --port {port} 2>{tmp_path}/serve.err & pid=$!; "
        f"for i in $(seq 90); do {probe} 2>/dev/null && break; sleep 1; done; kill -INT $pid; wait $pid; echo serve-exit=$?",
    )
    assert "home-writable" not in done.stdout, "the bind mount did not make HOME read-only"
    rows, _ = json.JSONDecoder().raw_decode(done.stdout)
    assert rows[0]["label"] == "medical", done
    assert "\nok\n" in done.stdout and "serve-exit=0" in done.stdout, (done.stdout, (tmp_path / "serve.err").read_text())
    assert "Traceback" not in (tmp_path / "serve.err").read_text()


# ---------------------------------------------------------------- page


def test_page_opens_the_browser_without_the_token_on_any_command_line(tmp_path: Path) -> None:
    """`medlens page` hands the browser a 0600 file, never the token (command lines are readable by
    every local user); the file sends the browser on to the page's `?token=` address."""
    argv_log = tmp_path / "browser-argv"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv_log}\n')
    browser.chmod(0o755)
    env = {**os.environ, "MEDLENS_CONFIG_DIR": str(tmp_path / "cfg"), "BROWSER": f"{browser} %s",
           "DISPLAY": "", "WAYLAND_DISPLAY": ""}
    done = subprocess.run([sys.executable, "-m", "medlens.cli", "page", "--port", "8399"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    token = (tmp_path / "cfg" / "token").read_text().strip()
    argv = argv_log.read_text()
    opener = tmp_path / "cfg" / "page-open.html"
    assert argv.strip() == opener.as_uri() and token not in argv
    assert stat.S_IMODE(opener.stat().st_mode) == 0o600
    assert f'content="0;url=http://127.0.0.1:8399/?token={token}"' in opener.read_text()
    assert token not in done.stdout
    printed = subprocess.run([sys.executable, "-m", "medlens.cli", "page", "--port", "8399", "--print-url"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert printed.stdout.strip() == f"http://127.0.0.1:8399/?token={token}"
