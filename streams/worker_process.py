"""Start, watch and stop a pipeline worker as a separate process.

Used by the demo command, the integration tests (which kill workers with SIGKILL on purpose)
and the benchmarks. Settings reach the child through its environment (``INVENTORY_*``), the
one way the Settings object reads them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from config.settings import REPO_ROOT


def http_json(url: str, timeout_s: float = 2.0) -> tuple[int, Any]:
    """GET a JSON view: (status, body); (0, None) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback only
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return 0, None


class WorkerProcess:
    """One ``python -m streams.worker`` child with its own settings overrides."""

    def __init__(self, env: dict[str, str], log_path: Path, web_port: int) -> None:
        self.env = {**os.environ, **env, "INVENTORY_WEB_PORT": str(web_port), "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.web_port = web_port
        self.url = f"http://127.0.0.1:{web_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.worker"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker exited ({self.proc and self.proc.returncode}); log:\n{self.log_tail()}")
            status, body = http_json(f"{self.url}/ready")
            if status == 200 and body and body.get("ready"):
                return
            time.sleep(0.5)
        raise TimeoutError(f"worker not ready after {timeout_s}s; log:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no flush, as a crash."""
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 30.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
