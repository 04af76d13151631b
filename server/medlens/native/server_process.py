"""One background `medlens serve` for the browser: found when it runs, started when it does not.

Why a lock, and why this one: several hosts can run at once (two windows, a popup and a scan), and
each may find the server down. Exactly one of them must start it. `server.lock` in the config
folder is locked with `flock`, and the lock is handed to the server it starts (the server inherits
the locked file), so the lock is held for exactly as long as that server lives: the kernel drops
it when the process ends, however it ends. A lock file left by a dead process (a crash, a kill,
a reboot) is therefore never in the way: the next host simply takes it over and starts a fresh
server. The file's content (the server's pid and port) is only information for `medlens status`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from medlens.errors import MedLensError
from medlens.serve.security import load_or_create_token
from medlens.settings import Settings

log = logging.getLogger(__name__)

LOCK_FILE = "server.lock"
SERVE_LOG = "serve.log"
MAX_LOG_BYTES = 1024 * 1024  # a log over this is moved to `<name>.1` when the next process opens it
PROBE_TIMEOUT_S = 2.0
POLL_S = 0.2

Probe = Literal["ours", "foreign", "down"]


@dataclass(frozen=True)
class RunningServer:
    """What the extension needs to use the server, and who started it."""

    url: str
    port: int
    token: str
    started_by: Literal["medlens", "user"]  # "medlens": a native host started it (it stops when idle)
    started_now: bool
    pid: int | None

    def to_message(self) -> dict[str, object]:
        return {"url": self.url, "port": self.port, "token": self.token, "started_by": self.started_by,
                "started_now": self.started_now}


def lock_path(settings: Settings) -> Path:
    return settings.config_path / LOCK_FILE


def log_path(settings: Settings, name: str) -> Path:
    """`<cache folder>/logs/<name>`, moved aside to `<name>.1` once over MAX_LOG_BYTES. Private
    (0600 in a 0700 folder): the server's banner in serve.log holds the page's address with the token."""
    path = settings.cache_path / "logs" / name
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            os.replace(path, path.with_name(name + ".1"))
    except FileNotFoundError:
        pass
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    os.chmod(path, 0o600)
    return path


def server_url(settings: Settings) -> str:
    host = "[::1]" if settings.host == "::1" else "127.0.0.1"
    return f"http://{host}:{settings.port}"


def probe(settings: Settings, token: str) -> Probe:
    """"ours": a MedLens server answers and accepts this user's token; "foreign": something else
    holds the port (another program, or a MedLens of another config folder); "down": nothing."""
    request = urllib.request.Request(f"{server_url(settings)}/v1/health", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as resp:
            body = json.loads(resp.read(64 * 1024))
    except urllib.error.HTTPError:
        return "foreign"
    except (OSError, ValueError):  # refused, reset, timed out, not JSON
        return "down"
    if not isinstance(body, dict) or body.get("api") != 1:
        return "foreign"
    return "ours" if body.get("paired") is True or body.get("token_required") is False else "foreign"


def host_started_pid(settings: Settings) -> int | None:
    """The pid of the live server a native host started, from the lock file; None if there is none."""
    try:
        pid = int(json.loads(lock_path(settings).read_text(encoding="utf-8"))["pid"])
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    alive = stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    return pid if alive and b"medlens" in cmdline and b"serve" in cmdline else None


def find_or_start(settings: Settings) -> RunningServer:
    """The running server (whoever started it), else a new one started in the background.

    Raises `port_in_use` when the port answers but not as this user's MedLens, and
    `server_start_failed` when the server does not come up within native_start_timeout_s."""
    token = load_or_create_token(settings.config_path)
    state = probe(settings, token)
    if state == "ours":
        return _running(settings, token, started_now=False)
    if state == "foreign":
        raise _port_in_use(settings)
    settings.config_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(lock_path(settings), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another host is starting it, or its server is still loading the model
        os.close(fd)
        _wait_until_ready(settings, token, None)
        return _running(settings, token, started_now=False)
    try:
        if probe(settings, token) == "ours":  # the user started one meanwhile
            return _running(settings, token, started_now=False)
        proc = _spawn(settings, fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": proc.pid, "port": settings.port, "started_at": time.time()}).encode(), 0)
    finally:
        os.close(fd)  # the server keeps its inherited copy, and with it the lock
    _wait_until_ready(settings, token, proc)
    return _running(settings, token, started_now=True)


def _spawn(settings: Settings, lock_fd: int) -> subprocess.Popen[bytes]:
    """`medlens serve` of this very install, detached (its own session: closing the browser does
    not kill it), logging to a file, holding the lock."""
    command = [sys.executable, "-m", "medlens.cli", "--config-dir", str(settings.config_path)]
    if settings.model_dir:
        command += ["--model-dir", settings.model_dir]
    command += ["--set", f"idle_shutdown_s={settings.native_idle_shutdown_s}", "serve", "--port", str(settings.port)]
    log_file = log_path(settings, SERVE_LOG)
    log.info("starting %s (log %s)", " ".join(command), log_file)
    with open(log_file, "ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} started by medlens native-host\n".encode())
        out.flush()
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, pass_fds=(lock_fd,), env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_until_ready(settings: Settings, token: str, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + settings.native_start_timeout_s
    while time.monotonic() < deadline:
        state = probe(settings, token)
        if state == "ours":
            return
        if state == "foreign":
            raise _port_in_use(settings)
        if proc is not None and proc.poll() is not None:
            raise MedLensError("server_start_failed", f"medlens serve exited with status {proc.returncode}: "
                               f"{_log_tail(settings)}")
        time.sleep(POLL_S)
    raise MedLensError("server_start_failed", f"the server did not answer at {server_url(settings)} within "
                       f"{settings.native_start_timeout_s:g} s (native_start_timeout_s): {_log_tail(settings)}")


def _running(settings: Settings, token: str, *, started_now: bool) -> RunningServer:
    pid = host_started_pid(settings)
    return RunningServer(url=server_url(settings), port=settings.port, token=token,
                         started_by="medlens" if pid else "user", started_now=started_now, pid=pid)


def _port_in_use(settings: Settings) -> MedLensError:
    return MedLensError("port_in_use", f"port {settings.port} answers, but not as this user's MedLens server: stop "
                        "that program, or choose another port (MEDLENS_PORT or `port` in config.toml) for both")


def _log_tail(settings: Settings, lines: int = 5) -> str:
    path = settings.cache_path / "logs" / SERVE_LOG
    try:
        tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return f"no log at {path}"
    return " | ".join(tail) + f" (log: {path})"
