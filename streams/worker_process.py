"""Start, watch and stop a pipeline worker, or the read processes (``streams.reader``), as
separate processes.

Used by the demo command, the integration tests (which kill workers with SIGKILL on purpose)
and the benchmarks. Settings reach the child through its environment (``INVENTORY_*``), the
one way the Settings object reads them. Each child starts a session of its own, so a kill
reaches every process it started and nothing is left running.
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


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``python <argv>`` from the repository, in a session of its own, output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, *argv],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class WorkerProcess:
    """One ``python -m streams.worker`` child with its own settings overrides."""

    def __init__(self, env: dict[str, str], log_path: Path, web_port: int) -> None:
        self.env = {**os.environ, **env, "INVENTORY_WEB_PORT": str(web_port), "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.web_port = web_port
        self.url = f"http://127.0.0.1:{web_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.proc = spawn(["-m", "streams.worker"], self.env, self.log_path)
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


class ReaderProcess:
    """``python -m streams.reader --processes N`` on ``port`` (loopback), its output in ``log_path``.

    ``stop()`` sends SIGTERM to the parent only (it must stop its children itself), then
    SIGKILLs whatever is left of its session; ``kill()`` SIGKILLs the whole session."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int, processes: int = 1) -> None:
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.port = port
        self.processes = processes
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ReaderProcess:
        argv = ["-m", "streams.reader", "--processes", str(self.processes), "--port", str(self.port)]
        self.proc = spawn([*argv, "--bind", "127.0.0.1"], self.env, self.log_path)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout_s: float = 60.0) -> ReaderProcess:
        """Until ``/ready`` answers 200 (every partition of inventory-changes read to its end)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"reader exited ({self.proc and self.proc.returncode}); log:\n{self.log_tail()}")
            status, _ = http_json(f"{self.url}/ready")
            if status == 200:
                return self
            time.sleep(0.2)
        raise TimeoutError(f"reader not ready after {timeout_s}s; log:\n{self.log_tail()}")

    def session(self) -> list[int]:
        """Pids of every live process of the reader's session (the parent and its children)."""
        if self.proc is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[3]) == self.proc.pid and fields[0] != "Z":  # fields[3]: the session id
                    found.append(int(entry.name))
        return sorted(found)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM to the parent; its exit code (None if it had to be killed)."""
        code = None
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        return code

    def kill(self) -> None:
        """SIGKILL to every process of the session (the parent's children included)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
