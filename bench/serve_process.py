"""`medlens serve` as its own process for the benchmarks: its own event loop, model thread and
decode threads, as a user runs it, so what a benchmark measures includes all of that."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


class ServeProcess:
    """Started with global flags and `--set` settings; ready once it prints its banner."""

    def __init__(self, config_dir: Path, port: int, *settings: str, flags: tuple[str, ...] = (), timeout_s: float = 180) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        extra = [arg for setting in settings for arg in ("--set", setting)]
        cmd = [sys.executable, "-m", "medlens.cli", "--config-dir", str(config_dir), *flags, *extra,
               "serve", "--port", str(port), "--allow-private"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            if not line:
                raise RuntimeError("medlens serve exited before it listened")
            if "Ctrl-C" in line:
                break
        self.token = (config_dir / "token").read_text().strip()
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> str:
        """Ctrl-C, as a person stops it; what it printed after the banner."""
        self.proc.send_signal(2)
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out or ""
