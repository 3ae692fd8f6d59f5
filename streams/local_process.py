"""Process handling shared by the modules that run local services as child processes.

``streams/local_kafka.py`` (the broker), ``connectors/local_registry.py`` (Apicurio Registry),
``connectors/local_connect.py`` (the Connect worker) and, for its lock and log tail,
``connectors/local_postgres.py``: each starts a server in its own session, remembers it in a
pid file, serialises start/stop with a lock file and stops it with SIGTERM, then SIGKILL.

Children: each module keeps its own registry (``_CHILDREN``, pid -> Popen) of the servers this
very Python process started and passes it in. A child that exits stays a zombie - and still
"alive" to ``kill(pid, 0)`` - until its parent waits for it, so for those pids ``alive`` and
``wait_exit`` ask the Popen. The registries stay per module on purpose: an entry outlives its
process when ``Popen.poll`` reaps it (only ``wait_exit`` removes entries), and one shared dict
would let a stale entry of one module answer for another module's process that got the pid.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

Children = dict[int, subprocess.Popen[bytes]]


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Serialise start/stop across processes (parallel make targets, test sessions): hold an
    exclusive flock on ``lock_file`` (its folder is created when missing)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cmdline(pid: int) -> list[str] | None:
    """The argv of a live, non-zombie process, or None: how a pid file's pid is told apart
    from a reused pid, and a zombie from a live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    except FileNotFoundError:
        return None
    except OSError:
        pass
    # No /proc (macOS): ask ps.
    out = subprocess.run(
        ["ps", "-o", "stat=,command=", "-p", str(pid)], capture_output=True, text=True
    )
    if out.returncode != 0 or not out.stdout.strip():
        return None
    state, _, command = out.stdout.strip().partition(" ")
    return None if state.startswith("Z") else command.split()


def read_pid(pid_file: Path) -> int | None:
    """The pid a pid file holds, or None (no file, or not a number). Not checked: see
    ``cmdline`` for whether that process is still the one that was started."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port: a cheap check before a
    protocol-level probe, and how a port taken by something else is noticed."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40, *, raw: bool = False) -> str:
    """The last lines of a log, for an error message. Java stack frames are left out (the
    cause would scroll away) and an empty log says so; ``raw``: every line as it is and
    nothing for an empty log (PostgreSQL's log)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"({path} does not exist)"
    if raw:
        return "\n".join(text[-lines:])
    text = [line for line in text if not line.lstrip().startswith(("at ", "... "))]
    return "\n".join(text[-lines:]) or f"({path} is empty)"


def failure_report(what: str, jvm_out: Path, log: Path) -> str:
    """An error message for a JVM that failed to start: ``what``, then the tails of its
    stdout/stderr (crashes before logging starts) and of its log."""
    return (
        f"{what}\n--- {jvm_out} ---\n{tail(jvm_out, 20)}"
        f"\n--- {log} ---\n{tail(log)}"
    )


def spawn(
    argv: list[str],
    *,
    cwd: Path,
    output: Path,
    pid_file: Path,
    children: Children,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server in the background: stdout and stderr appended to ``output``, its pid
    written to ``pid_file`` and the child registered in ``children``."""
    with open(output, "ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives Ctrl-C in the terminal that started it
            close_fds=True,  # above all: not the lock file's descriptor
            env=env,
        )
    children[proc.pid] = proc
    pid_file.write_text(f"{proc.pid}\n")
    return proc


def alive(pid: int, children: Children) -> bool:
    """True if pid runs: a child of ours is asked through its Popen (a zombie child is still
    there for kill(pid, 0)), any other process through kill(pid, 0) and ``cmdline``."""
    proc = children.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return cmdline(pid) is not None  # a zombie is dead


def wait_exit(pid: int, timeout: float, children: Children) -> bool:
    """Wait up to ``timeout`` seconds for pid to exit; True if it did. A child of ours is
    waited for (reaped) and leaves ``children``; any other process is polled."""
    proc = children.get(pid)
    if proc is not None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        children.pop(pid, None)
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid, children):
            return True
        time.sleep(0.1)
    return not alive(pid, children)


def terminate(
    pid: int,
    children: Children,
    *,
    stop_timeout: float,
    kill_timeout: float,
    say: Callable[[str], None],
    error: type[Exception],
) -> None:
    """Stop pid: SIGTERM (a clean shutdown), then SIGKILL if it has not exited within
    ``stop_timeout``; raises ``error`` if it survives SIGKILL for ``kill_timeout``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if wait_exit(pid, stop_timeout, children):
        return
    say(f"pid {pid} ignored SIGTERM for {stop_timeout:.0f}s; sending SIGKILL")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if not wait_exit(pid, kill_timeout, children):
        raise error(f"pid {pid} survived SIGKILL")
