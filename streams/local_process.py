"""``LocalService``: the one lifecycle of the local stack's servers (Kafka, registry, PostgreSQL,
Connect), each run on 127.0.0.1 as a child process under ``<local_dir>/<folder>``.

A start holds ``.lock``, starts the server in its own session (pid in a pid file), waits for
its readiness probe and, if it exits or times out, raises the service's error with the tails
of its output and log. A stop sends SIGTERM, then SIGKILL. ``main(argv)`` is the
``start|stop|status`` command line: status exits 3 when not running, ``--help`` starts nothing.
A subclass per service is its spec: files, what to resolve and write, the command line and
environment, the probe, the port. Each keeps its own children (pid -> Popen): a child that
exited stays a zombie, alive to ``kill(pid, 0)``, until its parent reaps it.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Self

from config.settings import Settings, get_settings


class LocalServiceError(RuntimeError):
    """A local service could not be resolved, prepared, started or stopped."""


class Under:
    """A file of a service: ``libs = Under("libs")`` on a ``ServicePaths`` is ``<root>/libs``."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    def __get__(self, paths: ServicePaths, owner: type | None = None) -> Path:
        return paths.root.joinpath(*self.parts)


class ServicePaths:
    """Where a service keeps its files: ``<local_dir>/<folder>`` (ignored by git)."""

    folder: ClassVar[str]
    pid_file: ClassVar[Under]
    log: ClassVar[Under]  # the server's own log
    out: ClassVar[Under]  # its stdout and stderr (crashes before its logging starts)
    lock_file = Under(".lock")

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def of(cls, settings: Settings) -> Self:
        return cls(Path(settings.local_dir).resolve() / cls.folder)


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """An exclusive flock on ``lock_file``: one start or stop at a time across processes."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cmdline(pid: int) -> list[str] | None:
    """The argv of a live, non-zombie process, or None (tells a reused pid from ours)."""
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    except FileNotFoundError:
        return None
    except OSError:
        pass
    out = subprocess.run(
        ["ps", "-o", "stat=,command=", "-p", str(pid)],  # no /proc (macOS)
        capture_output=True,
        text=True,
    )
    if out.returncode != 0 or not out.stdout.strip():
        return None
    state, _, command = out.stdout.strip().partition(" ")
    return None if state.startswith("Z") else command.split()


def read_pid(pid_file: Path) -> int | None:
    """The pid on a pid file's first line, or None; see ``cmdline`` for whether it is ours."""
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file (a ``.complete`` marker), or {} when missing or broken."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def write_private(path: Path, text: str) -> Path:
    """Write a file only its owner may read (mode 0600), atomically (a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(text)
    tmp.replace(path)
    return path


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    """A log's last lines for an error message, Java stack frames left out."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"({path} does not exist)"
    text = [line for line in text if not line.lstrip().startswith(("at ", "... "))]
    return "\n".join(text[-lines:]) or f"({path} is empty)"


def alive(pid: int, children: Mapping[int, subprocess.Popen[bytes]]) -> bool:
    """True if pid runs: a child of ours through its Popen, another process through kill/proc."""
    if (proc := children.get(pid)) is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return cmdline(pid) is not None  # a zombie is dead


def wait_exit(pid: int, timeout: float, children: dict[int, subprocess.Popen[bytes]]) -> bool:
    """Wait up to ``timeout`` s for pid to exit; True if it did (a child of ours is reaped)."""
    if (proc := children.get(pid)) is not None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        children.pop(pid, None)
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid, children):
        time.sleep(0.1)
    return not alive(pid, children)


def rss(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return f"{int(line.split()[1]) / 1024:.0f} MB"
    except (OSError, ValueError, IndexError):
        pass
    return "?"


class LocalService(ABC):
    """One local server; the abstract methods and class attributes are its spec."""

    name: ClassVar[str]  # messages start with local-<name>
    module: ClassVar[str]  # python -m <module>
    description: ClassVar[str]  # the command line's description
    title: ClassVar[str]  # status: "local <title>: running"
    noun: ClassVar[str]  # "a <noun> already answers on ..."
    Paths: ClassVar[type[ServicePaths]]
    port_setting: ClassVar[str]  # the Settings field of the port it listens on
    timeout_setting: ClassVar[str]  # the Settings field of how long a start waits
    error: ClassVar[type[LocalServiceError]] = LocalServiceError
    poll_s: ClassVar[float] = 0.2
    stop_timeout_s: ClassVar[float] = 30.0
    kill_timeout_s: ClassVar[float] = 10.0
    commands: ClassVar[Mapping[str, Callable[[Settings], object]]] = {}  # beyond start/stop/status

    def __init__(self) -> None:
        self.children: dict[int, subprocess.Popen[bytes]] = {}

    # --- the spec ---------------------------------------------------------------------------

    @abstractmethod
    def address(self, settings: Settings) -> str:
        """Where it answers (host:port or URL)."""

    @abstractmethod
    def label(self, settings: Settings) -> str:
        """What and which version: "Kafka 4.1.2"."""

    @abstractmethod
    def ready(self, settings: Settings, timeout: float = 3.0) -> bool:
        """The readiness probe: it answers (whoever started it) and can serve."""

    @abstractmethod
    def owns(self, settings: Settings, argv: list[str]) -> bool:
        """True if a process with this argv is this service (not a reused pid)."""

    @abstractmethod
    def prepare(self, settings: Settings) -> tuple[list[str], Mapping[str, str] | None]:
        """Resolve and write what a start needs; the command line and its environment."""

    def elsewhere(self, settings: Settings) -> str | None:
        """Why the settings use another server, not this one (then start and stop do nothing)."""
        return None

    def after_ready(self, settings: Settings) -> str:
        """Run once it answers, on every start; returns what to add to the ready message."""
        return ""

    def outdated(self, settings: Settings, pid: int) -> str | None:
        """Why the running server ``pid`` should be restarted by a start, or None."""
        return None

    def details(self, settings: Settings, running: bool, pid: int | None) -> list[tuple[str, str]]:
        """The status lines between its pid and its log."""
        return []

    def launch(self, settings: Settings, argv: list[str], env: Mapping[str, str] | None) -> int:
        """Start the server in its own session (survives Ctrl-C), output appended to ``out``."""
        paths = self.Paths.of(settings)
        paths.out.parent.mkdir(parents=True, exist_ok=True)
        with open(paths.out, "ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=paths.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env=env,
            )  # close_fds: not the lock's fd
        self.children[proc.pid] = proc
        paths.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def halt(self, settings: Settings, pid: int) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it has not exited in ``stop_timeout_s``."""
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if wait_exit(pid, self.stop_timeout_s, self.children):
            return
        self.say(f"pid {pid} ignored SIGTERM for {self.stop_timeout_s:.0f}s; sending SIGKILL")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if not wait_exit(pid, self.kill_timeout_s, self.children):
            raise self.error(f"pid {pid} survived SIGKILL")

    # --- the lifecycle ----------------------------------------------------------------------

    def say(self, message: str) -> None:
        print(f"local-{self.name}: {message}", flush=True)

    def managed_pid(self, settings: Settings | None = None) -> int | None:
        """The pid in the pid file if that process is still this service."""
        settings = settings or get_settings()
        pid = read_pid(self.Paths.of(settings).pid_file)
        return pid if pid is not None and self.owns(settings, cmdline(pid) or []) else None

    def is_running(self, settings: Settings | None = None) -> bool:
        """True if it answers (started by this tool or not)."""
        return self.ready(settings or get_settings())

    def failure(self, settings: Settings, what: str) -> LocalServiceError:
        """``what``, then the tails of the server's output and of its log."""
        paths = self.Paths.of(settings)
        shown = [(paths.out, 20)] if paths.out != paths.log else []
        return self.error(
            "\n".join([what, *(f"--- {path} ---\n{tail(path, lines)}" for path, lines in [*shown, (paths.log, 40)])])
        )

    def wait_ready(self, settings: Settings, pid: int) -> None:
        timeout = float(getattr(settings, self.timeout_setting))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(pid, self.children):
                raise self.failure(settings, f"the {self.noun} (pid {pid}) exited during startup")
            if self.ready(settings, timeout=2.0):
                return
            time.sleep(self.poll_s)
        raise self.failure(
            settings, f"the {self.noun} (pid {pid}) did not answer on {self.address(settings)} within {timeout:.0f}s"
        )

    def _halt(self, settings: Settings, pid: int) -> None:
        self.halt(settings, pid)
        self.Paths.of(settings).pid_file.unlink(missing_ok=True)

    def start(self, settings: Settings | None = None) -> bool:
        """Start it unless it answers already; True only if this call started it (a restart of
        an ``outdated`` server is False too). Blocks until it is ready, or raises ``error``."""
        settings = settings or get_settings()
        if other := self.elsewhere(settings):
            self.say(f"{other}; not starting one")
            return False
        paths, address = self.Paths.of(settings), self.address(settings)
        restarted = False
        with locked(paths.lock_file):
            managed = self.managed_pid(settings)
            if self.ready(settings):
                why = self.outdated(settings, managed) if managed is not None else None
                if managed is None or why is None:
                    owner = f"pid {managed}" if managed else "not started by this tool"
                    self.say(f"a {self.noun} already answers on {address} ({owner})")
                    self.after_ready(settings)
                    return False
                self.say(f"restarting {self.noun} pid {managed}: {why}")
                self._halt(settings, managed)
                managed, restarted = None, True
            if managed is not None:
                self.say(f"{self.noun} pid {managed} is alive but not answering yet; waiting for it")
                self.wait_ready(settings, managed)
                self.after_ready(settings)
                return False
            paths.pid_file.unlink(missing_ok=True)  # stale
            port = int(getattr(settings, self.port_setting))
            if port_open("127.0.0.1", port):
                raise self.error(
                    f"port {port} is taken by something that is not a {self.noun}; "
                    f"set INVENTORY_{self.port_setting.upper()}"
                )
            began = time.monotonic()
            pid = self.launch(settings, *self.prepare(settings))
            self.say(f"started {self.label(settings)} (pid {pid}); waiting for it")
            try:
                self.wait_ready(settings, pid)
                extra = self.after_ready(settings)
            except BaseException:
                self._halt(settings, pid)
                raise
        self.say(
            f"{self.label(settings)} ready on {address} (pid {pid}, "
            f"{time.monotonic() - began:.1f}s{extra}; log {paths.log})"
        )
        return not restarted

    def stop(self, settings: Settings | None = None) -> bool:
        """Stop the server this tool started (its pid file); True if one was stopped."""
        settings = settings or get_settings()
        if other := self.elsewhere(settings):
            self.say(f"{other}; nothing to stop")
            return False
        paths = self.Paths.of(settings)
        with locked(paths.lock_file):
            pid = read_pid(paths.pid_file)
            if pid is None:
                foreign = self.ready(settings)
                extra = f" (but a {self.noun} not started by this tool answers)" if foreign else ""
                self.say(f"not running: no pid file{extra}")
                return False
            if not self.owns(settings, cmdline(pid) or []):
                self.say(f"not running: removing stale pid file (pid {pid})")
                paths.pid_file.unlink(missing_ok=True)
                return False
            began = time.monotonic()
            self._halt(settings, pid)
        self.say(f"stopped pid {pid} in {time.monotonic() - began:.1f}s")
        return True

    def status(self, settings: Settings | None = None) -> bool:
        """Print its state; True if it answers."""
        settings = settings or get_settings()
        if other := self.elsewhere(settings):
            self.say(f"{other}; the local one is unused")
            return False
        running, pid = self.ready(settings), self.managed_pid(settings)
        state = (
            "running" if running else "not running" if pid is None else "starting (process alive, not answering yet)"
        )
        unmanaged = "-" + ("  (not started by this tool)" if running else "")
        rows = [
            ("pid", unmanaged if pid is None else f"{pid} (RSS {rss(pid)})"),
            *self.details(settings, running, pid),
            ("log", str(self.Paths.of(settings).log)),
        ]
        width = max(len(name) for name, _ in rows) + 2
        print(f"local {self.title}: {state}")
        for name, value in rows:
            print(f"  {name + ':':<{width}}{value}")
        return running

    def main(self, argv: list[str] | None = None) -> int:
        parser = argparse.ArgumentParser(prog=f"python -m {self.module}", description=self.description)
        parser.add_argument("command", choices=["start", "stop", "status", *self.commands])
        args = parser.parse_args(argv)
        settings = get_settings()
        try:
            if args.command == "status":
                return 0 if self.status(settings) else 3  # LSB: 3 = not running
            run = {"start": self.start, "stop": self.stop, **self.commands}[args.command]
            run(settings)
        except LocalServiceError as exc:
            print(f"local-{self.name}: error: {exc}", file=sys.stderr)
            return 1
        return 0

    def maven(self, settings: Settings, args: list[str], cwd: Path, what: str) -> int:
        """Run Maven in ``cwd``, naming each jar or archive it downloads; how many files it
        downloaded. Raises ``error`` with the tail of its output if it fails."""
        if shutil.which(settings.maven_bin) is None:
            raise self.error(f"Maven ({settings.maven_bin!r}) is not on PATH")
        last: list[str] = []
        downloads = 0
        with subprocess.Popen(
            [settings.maven_bin, "-B", *args],
            cwd=cwd,
            text=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ) as proc:
            assert proc.stdout is not None
            # "[INFO] Downloaded from central: https://.../x-1.0.jar (12 kB at 3.4 MB/s)"
            for line in proc.stdout:
                last = [*last[-39:], line.rstrip()]
                if "Downloaded from" in line:
                    downloads += 1
                    words = line.split("Downloaded from", 1)[1].split()
                    if len(words) >= 2 and words[1].endswith((".jar", ".tar.gz")):
                        size = " ".join(words[2:4]).lstrip("(")
                        self.say(f"  [{downloads:3d} files] {words[1].rsplit('/', 1)[-1]} ({size})")
        if proc.returncode != 0:
            raise self.error(f"Maven failed (exit {proc.returncode}) resolving {what}:\n" + "\n".join(last))
        return downloads
