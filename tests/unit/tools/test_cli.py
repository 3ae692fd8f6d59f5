"""``inventory-center``: every command's ``--help`` prints its usage and exits 0 having started
no process, bound or connected no socket and built no Kafka client (an audit hook refuses them)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from config.settings import REPO_ROOT
from streams.cli import COMMANDS, LOCAL

GUARD = """
import sys
REFUSED = ("subprocess.Popen", "os.system", "os.posix_spawn", "os.fork", "os.exec", "os.spawn", "socket.bind",
           "socket.connect", "pty.spawn")
def hook(event, args):
    if event in REFUSED:
        raise RuntimeError(f"--help started something: {event} {args!r}")
sys.addaudithook(hook)
import confluent_kafka, confluent_kafka.admin
def refuse(*args, **kwargs):
    raise RuntimeError("--help built a Kafka client")
confluent_kafka.Producer = confluent_kafka.Consumer = confluent_kafka.admin.AdminClient = refuse
from streams.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", GUARD, *argv], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


def test_the_top_level_help_lists_every_command() -> None:
    done = run("--help")
    assert done.returncode == 0, done.stderr
    assert "usage: inventory-center" in done.stdout and all(name in done.stdout for name in COMMANDS)


@pytest.mark.parametrize(
    "argv",
    [[name, "--help"] for name in COMMANDS if name != "local"]
    + [["local", "--help"]]
    + [["local", service, "start", "--help"] for service in LOCAL],
)
def test_a_command_help_starts_nothing(argv: list[str]) -> None:
    done = run(*argv)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert "usage:" in done.stdout, done.stdout


def test_the_guard_itself_refuses_a_start() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            GUARD.replace("sys.exit(main(sys.argv[1:]))", "import socket; socket.socket().bind(('127.0.0.1', 0))"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "--help started something: socket.bind" in done.stderr


def test_an_unknown_command_is_refused() -> None:
    done = run("frobnicate")
    assert done.returncode == 2 and "invalid choice" in done.stderr
