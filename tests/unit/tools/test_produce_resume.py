"""The producer CLI when the broker does not acknowledge: it retries for the time it was
given, names every line it did not send, writes them (in input order) to a file that resumes
the run, and a resume sends each line once. With librdkafka against an address where nothing
listens (127.0.0.1:1), and with a scripted stand-in for the producer where the test needs to
choose which records fail."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.settings import REPO_ROOT, Settings, get_settings
from connectors import produce
from connectors.produce import EventPublisher, default_unsent_path, line_ranges, main

SEED_DAY = REPO_ROOT / "connectors" / "samples" / "seed-day.jsonl"
SEED_LINES = [line for line in SEED_DAY.read_text(encoding="utf-8").splitlines(keepends=True) if line.strip()]
INVALID = '{"eventType": "NoSuchEvent", "eventId": "x"}\n'


def write_input(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def unreachable_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("INVENTORY_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens on port 1
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# --- with librdkafka: nothing answers --------------------------------------------------------


def test_help_prints_and_exits_without_starting_anything() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "connectors.produce", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "INVENTORY_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for option in ("--retry-for", "--from-line", "--unsent", "--dry-run", "Exit status"):
        assert option in done.stdout
    assert done.stderr == ""  # no client was created: nothing tried to connect
    assert time.monotonic() - started < 30


def test_an_unreachable_broker_costs_the_retry_time_and_every_valid_line_is_written_to_resume(
    tmp_path: Path, unreachable_broker: None, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [SEED_LINES[0], SEED_LINES[1], "\n", INVALID, SEED_LINES[2], SEED_LINES[3]]
    source = write_input(tmp_path / "day.jsonl", lines)
    started = time.monotonic()
    assert main([str(source), "--retry-for", "1"]) == 75
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert 1 <= elapsed < 20, elapsed
    unsent = tmp_path / "day.jsonl.unsent"
    assert unsent.read_text(encoding="utf-8") == "".join([SEED_LINES[0], SEED_LINES[1], SEED_LINES[2], SEED_LINES[3]])
    assert "not sent: lines 1-2, 5-6" in err
    assert f"resume with: python -m connectors.produce {unsent}" in err
    assert "invalid line 4" in err
    assert "4 valid, 1 invalid, 0 sent, 4 not sent" in err
    # librdkafka retries a connection about 20 times a second: told once per state, not per retry
    assert 1 <= sum(line.startswith("kafka: ") for line in err.splitlines()) <= 3, err
    assert "%3|" not in err


def test_resuming_an_unsent_file_that_fails_again_rewrites_it_in_place(
    tmp_path: Path, unreachable_broker: None, capsys: pytest.CaptureFixture[str]
) -> None:
    unsent = write_input(tmp_path / "day.jsonl.unsent", SEED_LINES[:3])
    assert main([str(unsent), "--retry-for", "1"]) == 75
    assert unsent.read_text(encoding="utf-8") == "".join(SEED_LINES[:3])
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "day.jsonl.unsent.unsent").exists()
    assert "not sent: lines 1-3" in capsys.readouterr().err


def test_a_dry_run_sends_nothing_and_writes_nothing(tmp_path: Path, unreachable_broker: None) -> None:
    source = write_input(tmp_path / "day.jsonl", [SEED_LINES[0], INVALID])
    assert main([str(source), "--dry-run"]) == 1
    assert list(tmp_path.iterdir()) == [source]


# --- with a scripted producer: the bookkeeping -----------------------------------------------


class Msg:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def value(self) -> bytes:
        return self._value


class Refused:
    def __init__(self, text: str) -> None:
        self.text = text

    def str(self) -> str:
        return self.text


class ScriptedProducer:
    """Stands in for confluent_kafka.Producer: ``fails(n)`` says whether the n-th record
    produced (1-based) is refused; ``written`` is what the broker holds. A poll reports every
    record but the newest (still in flight); a flush reports them all."""

    fails: Any = staticmethod(lambda n: False)
    written: list[bytes] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.queue: list[tuple[int, bytes, Any]] = []
        self.count = 0

    def produce(self, topic: str, key: bytes, value: bytes, on_delivery: Any) -> None:
        self.count += 1
        self.queue.append((self.count, value, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        return self._serve(self.queue[:-1])

    def _serve(self, served: list[tuple[int, bytes, Any]]) -> int:
        self.queue = self.queue[len(served) :]
        for n, value, report in served:
            if type(self).fails(n):
                report(Refused("Local: Message timed out"), Msg(value))
            else:
                type(self).written.append(value)
                report(None, Msg(value))
        return len(served)

    def flush(self, timeout: float = 0) -> int:
        self._serve(self.queue)
        return 0

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        purged, self.queue = self.queue, []
        for _, value, report in purged:
            report(Refused("Local: Purged in queue"), Msg(value))


class HeldProducer(ScriptedProducer):
    """Acknowledges nothing until flushed: every record stays in flight."""

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return self._serve(self.queue)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> type[ScriptedProducer]:
    import confluent_kafka

    ScriptedProducer.written = []
    ScriptedProducer.fails = staticmethod(lambda n: False)
    monkeypatch.setattr(confluent_kafka, "Producer", ScriptedProducer)
    return ScriptedProducer


def publisher() -> EventPublisher:
    return EventPublisher(Settings(), retry_for_s=1)


def event_ids(values: list[bytes]) -> list[str]:
    from schemas.codec import decode

    return [decode(v).event_id for v in values]


def ids_of(lines: list[str]) -> list[str]:
    return [json.loads(line)["eventId"] for line in lines]


def test_an_outage_mid_file_then_a_resume_sends_every_line_exactly_once(
    tmp_path: Path, scripted: type[ScriptedProducer]
) -> None:
    lines = [*SEED_LINES[:4], INVALID, "\n", *SEED_LINES[4:]]
    source = write_input(tmp_path / "day.jsonl", lines)
    unsent = default_unsent_path(str(source), None)  # type: ignore[arg-type]
    scripted.fails = staticmethod(lambda n: n >= 3)  # the broker goes away at the third record (line 3)
    err = io.StringIO()
    with source.open(encoding="utf-8") as stream:
        first = produce.produce(stream, publisher(), unsent, err=err)
    assert first.sent == 2 and first.invalid[0].line_no == 5
    assert sorted(first.unsent) == [3, 4, *range(7, len(lines) + 1)]
    assert first.unsent[3] == first.unsent[4] == "Local: Message timed out"
    assert all(first.unsent[n] == "not tried" for n in range(7, len(lines) + 1))
    assert "line 3 was not sent (Local: Message timed out): sending stops" in err.getvalue()  # seen as line 4 left
    assert unsent.read_text(encoding="utf-8") == "".join(SEED_LINES[2:])  # in order, the invalid line left out

    scripted.fails = staticmethod(lambda n: False)  # the broker is back
    with unsent.open(encoding="utf-8") as stream:
        second = produce.produce(stream, publisher(), unsent, err=io.StringIO())
    assert second.unsent == {} and second.sent == len(SEED_LINES) - 2
    assert event_ids(scripted.written) == ids_of(SEED_LINES)  # each line once, in input order


def test_a_resumed_file_that_is_all_sent_is_removed(
    tmp_path: Path, scripted: type[ScriptedProducer], capsys: pytest.CaptureFixture[str]
) -> None:
    unsent = write_input(tmp_path / "day.jsonl.unsent", SEED_LINES[:3])
    assert main([str(unsent)]) == 0
    assert not unsent.exists()
    assert "every line sent; removed" in capsys.readouterr().err


def test_a_fully_sent_file_writes_no_unsent_file(tmp_path: Path, scripted: type[ScriptedProducer]) -> None:
    source = write_input(tmp_path / "day.jsonl", SEED_LINES)
    assert main([str(source)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["day.jsonl"]
    assert event_ids(scripted.written) == ids_of(SEED_LINES)


def test_from_line_skips_the_lines_before_it_and_keeps_the_file_s_numbering(
    tmp_path: Path, scripted: type[ScriptedProducer]
) -> None:
    source = write_input(tmp_path / "day.jsonl", [*SEED_LINES[:5], INVALID])
    scripted.fails = staticmethod(lambda n: n == 2)  # the second record sent (line 4) fails, alone
    with source.open(encoding="utf-8") as stream:
        outcome = produce.produce(stream, publisher(), tmp_path / "out.unsent", first_line=3, err=io.StringIO())
    # Line 5 was in flight when line 4's failure came, and went through: only line 4 is left
    # (a resume sends it after line 5: sending stops at the first failure so that only the
    # records in flight at that moment can be overtaken).
    assert outcome.unsent == {4: "Local: Message timed out"}
    assert (tmp_path / "out.unsent").read_text(encoding="utf-8") == SEED_LINES[3]
    assert outcome.invalid[0].line_no == 6  # read after the stop, still validated and named
    assert event_ids(scripted.written) == ids_of([SEED_LINES[2], SEED_LINES[4]])


class InterruptedAt:
    """Lines of a file, with Ctrl-C pressed once while line ``at`` is being read."""

    def __init__(self, lines: list[str], at: int) -> None:
        self.lines, self.at, self.n, self.pressed = lines, at, 0, False

    def __iter__(self) -> InterruptedAt:
        return self

    def __next__(self) -> str:
        if self.n + 1 == self.at and not self.pressed:
            self.pressed = True
            raise KeyboardInterrupt
        if self.n == len(self.lines):
            raise StopIteration
        self.n += 1
        return self.lines[self.n - 1]


def test_ctrl_c_writes_the_lines_in_flight_and_the_rest_to_resume(
    tmp_path: Path, scripted: type[ScriptedProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    import confluent_kafka

    monkeypatch.setattr(confluent_kafka, "Producer", HeldProducer)
    out = tmp_path / "day.unsent"
    outcome = produce.produce(InterruptedAt(SEED_LINES, at=4), publisher(), out, err=io.StringIO())
    assert outcome.interrupted
    assert sorted(outcome.unsent) == list(range(1, len(SEED_LINES) + 1))
    assert {outcome.unsent[n] for n in (1, 2, 3)} == {"Local: Purged in queue"}  # never left this process
    assert out.read_text(encoding="utf-8") == "".join(SEED_LINES)
    assert scripted.written == []


def test_line_ranges() -> None:
    assert line_ranges([]) == ""
    assert line_ranges([9, 3, 4, 5, 11, 12]) == "3-5, 9, 11-12"
