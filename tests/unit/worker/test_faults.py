"""streams/faults.py: the test-only crash points count per point and kill at the armed count."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from config.settings import REPO_ROOT
from streams import faults
from tables.state import OutRecord


def test_parse_reads_points_and_counts() -> None:
    assert faults.parse("") == {}
    assert faults.parse("commit:orders@3") == {"commit:orders": 3}
    assert faults.parse("commit:stock@1, flushed@12") == {"commit:stock": 1, "flushed": 12}


@pytest.mark.parametrize("spec", ["commit:order@1", "flushed", "flushed@0", "flushed@x", "@2"])
def test_parse_refuses_what_it_does_not_know(spec: str) -> None:
    with pytest.raises(ValueError, match="INVENTORY_KILL_AT"):
        faults.parse(spec)


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Arm commit:stock@2 and flushed@3 in this process; record kills (their line) instead of dying."""
    killed: list[str] = []
    monkeypatch.setattr(faults, "_armed", {"commit:stock": 2, "flushed": 3})
    monkeypatch.setattr(faults, "_reached", {})
    monkeypatch.setattr(faults, "_applied", set())

    def kill(pid: int, sig: int) -> None:
        assert (pid, sig) == (os.getpid(), signal.SIGKILL)
        killed.append(capsys.readouterr().err.strip().split(": ")[1])

    monkeypatch.setattr(faults.os, "kill", kill)
    return killed


class Sink:
    def __init__(self) -> None:
        self.flushes = 0

    def flush_blocking(self, timeout_s: float) -> bool:
        self.flushes += 1
        return True


ENVELOPE = OutRecord("p.stock-commands", b"orders|1", b"envelope", 2)
OUTPUT = OutRecord("p.inventory-changes", b"SKU|WH", b"output")


def test_a_commit_point_counts_only_transactions_that_send_an_envelope(kills: list[str]) -> None:
    sink = Sink()
    faults.committed("stock", [OUTPUT], sink)  # no envelope: not the point
    faults.committed("orders", [ENVELOPE], sink)  # another point: counted apart, not armed
    faults.committed("stock", [ENVELOPE, OUTPUT], sink)
    assert kills == [] and sink.flushes == 0
    faults.committed("stock", [OUTPUT, ENVELOPE], sink)
    assert kills == ["killed at commit:stock #2"] and sink.flushes == 1  # flushed (changelog acknowledged) first
    assert faults._reached == {"commit:orders": 1, "commit:stock": 2}


def both_tables_apply_an_envelope() -> None:
    faults.committed("orders", [OUTPUT], Sink(), applied_envelope=True)
    faults.committed("stock", [OUTPUT], Sink(), applied_envelope=True)


def test_flushed_kills_at_its_own_count(kills: list[str]) -> None:
    for _ in range(2):
        both_tables_apply_an_envelope()
        faults.flushed()
    faults.committed("stock", [ENVELOPE], Sink())
    assert kills == []
    both_tables_apply_an_envelope()
    faults.flushed()
    assert kills == ["killed at flushed #3"]


def test_flushed_counts_only_flushes_after_both_tables_applied_an_envelope(kills: list[str]) -> None:
    faults.flushed()  # nothing applied
    faults.committed("orders", [OUTPUT], Sink(), applied_envelope=True)
    faults.committed("stock", [ENVELOPE], Sink())  # sends one, applies none
    faults.flushed()  # only orders applied one
    faults.committed("stock", [OUTPUT], Sink(), applied_envelope=True)
    faults.flushed()  # only stock since the last flush: orders' was before it
    assert faults._reached.get("flushed") is None
    both_tables_apply_an_envelope()
    faults.flushed()
    assert faults._reached["flushed"] == 1 and kills == []


def test_unset_nothing_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults, "_armed", {})
    monkeypatch.setattr(faults, "_reached", {})
    faults.committed("orders", [ENVELOPE], Sink())
    faults.flushed()
    assert faults._reached == {}


def test_the_armed_process_dies_by_sigkill_with_one_line() -> None:
    script = (
        "from streams import faults\nfor n in range(5):\n    print(n, flush=True)\n"
        "    for table in faults.TABLES:\n        faults.committed(table, [], None, applied_envelope=True)\n"
        "    faults.flushed()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "INVENTORY_KILL_AT": "flushed@3"},
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["0", "1", "2"]
    assert "INVENTORY_KILL_AT: killed at flushed #3" in done.stderr
