"""Which local table partitions survive an unclean shutdown (streams/local_state.py).

The property test plays the protocol the proof rests on: transactions hand their records
(head first) to a producer whose acknowledged and received records are prefixes of what was
sent, and write themselves locally in one batch afterwards; crashes land anywhere, the
delivery callbacks record offsets whenever the producer is polled, another worker may take
the partition over, the changelog may be compacted. Whatever ``judge`` keeps must end, after
Faust's restore from the offset it leaves and the redo of the head, equal to a restore from
the changelog alone; what it deletes must be ahead of Kafka (or unprovable: compacted).
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.faust_private import PERSISTED_OFFSET_KEY
from streams.keys import HEAD
from streams.local_state import LocalPartition, Verdict, judge, read_local, set_local_offset

Record = tuple[bytes, bytes | None]
KEYS = [f"k{i}".encode() for i in range(5)]


def _apply(state: dict[bytes, bytes], records: list[Record]) -> None:
    for k, v in records:
        if v is None:
            state.pop(k, None)
        else:
            state[k] = v


def _redo_records(state: dict[bytes, bytes]) -> list[Record]:
    head = state.get(HEAD)
    return [] if head is None else list(pickle.loads(head)[1])


class Changelog:
    """One changelog partition: offset -> record, with holes once compacted."""

    def __init__(self) -> None:
        self.records: dict[int, Record] = {}
        self.high = 0
        self.reads = 0

    def append(self, records: list[Record]) -> None:
        for r in records:
            self.records[self.high] = r
            self.high += 1

    def read(self, start: int, end: int) -> Iterator[tuple[int, bytes | None, bytes | None]]:
        for offset in range(start, min(end, self.high)):
            if offset in self.records:
                self.reads += 1
                k, v = self.records[offset]
                yield offset, k, v

    def compact(self, below: int) -> None:
        """Drop every record under ``below`` whose key has a later record (tombstones kept)."""
        last = {k: o for o, (k, _) in sorted(self.records.items())}
        for o in [o for o, (k, _) in self.records.items() if o < below and last[k] != o]:
            del self.records[o]

    def state(self) -> dict[bytes, bytes]:
        s: dict[bytes, bytes] = {}
        _apply(s, [self.records[o] for o in sorted(self.records)])
        return s


class Worker:
    """A worker's partition: its local store (with Faust's offset) and its producer."""

    def __init__(self, rng: random.Random, log: Changelog, serial: list[int]) -> None:
        self.rng, self.log, self.serial = rng, log, serial
        self.local: dict[bytes, bytes] = {}
        self.offset: int | None = None
        self.base = 0  # the changelog offset of the first record sent by this run
        self.sent: list[Record] = []
        self.acked = 0

    def restore(self, after: int | None, upto: int | None = None) -> None:
        """Faust's restore: records after ``after`` applied in order, the offset recorded."""
        for o in sorted(self.log.records):
            if (after is None or o > after) and (upto is None or o < upto):
                _apply(self.local, [self.log.records[o]])
                self.offset = o

    def start_sending(self) -> None:
        self.base, self.sent, self.acked = self.log.high, [], 0

    def poll(self) -> None:
        """Some acknowledgements arrive; the delivery callbacks record the last offset."""
        self.acked = self.rng.randint(self.acked, len(self.sent))
        if self.acked:
            self.offset = self.base + self.acked - 1

    def send(self, records: list[Record], crash_before_local_write: bool = False) -> bool:
        for r in records:
            self.sent.append(r)
            if self.rng.random() < 0.1:
                self.poll()  # the sink polls every 1,000 sends
        if crash_before_local_write:
            return False
        _apply(self.local, records)
        return True

    def transaction(self) -> list[Record]:
        self.serial[0] += 1
        writes = [
            (k, None if self.rng.random() < 0.2 else f"v{self.serial[0]}".encode())
            for k in self.rng.sample(KEYS, self.rng.randint(1, 3))
        ]
        return [(HEAD, pickle.dumps((self.serial[0], writes))), *writes]

    def crash(self) -> None:
        """Kafka holds a prefix of what was sent, at least what was acknowledged."""
        received = self.rng.randint(self.acked, len(self.sent))
        self.log.append(self.sent[:received])

    def run(self, transactions: int, crash_mid_transaction: bool) -> None:
        """Redo the head, commit transactions, then crash (maybe in the middle of one)."""
        self.start_sending()
        self.send(_redo_records(self.local))
        for n in range(transactions):
            last = n == transactions - 1
            self.send(self.transaction(), crash_before_local_write=last and crash_mid_transaction)
            if self.rng.random() < 0.5:
                self.poll()
        self.crash()


def _ahead(local: dict[bytes, bytes], log: Changelog, full: list[Record]) -> bool:
    return local.get(HEAD) not in {v for k, v in full if k == HEAD}


@given(st.integers(0, 2**32 - 1))
def test_a_kept_partition_ends_as_a_restore_from_the_changelog_alone(seed: int) -> None:
    rng = random.Random(seed)
    log, serial = Changelog(), [0]
    full: list[Record] = []  # every record ever appended, for the "was it ahead" check
    me = Worker(rng, log, serial)
    for _round in range(rng.randint(1, 4)):
        if rng.random() < 0.3:  # another worker owns the partition for a while
            other = Worker(rng, log, serial)
            other.restore(None)
            other.start_sending()
            other.send(_redo_records(other.local))
            for _ in range(rng.randint(1, 4)):
                other.send(other.transaction())
            other.acked = len(other.sent)
            other.crash()
        if rng.random() < 0.3:
            log.compact(rng.randint(0, log.high))
        full = [r for _, r in sorted(_all_records(log, full).items())]

        if me.local:
            local = LocalPartition("stock-state", 0, Path("-"), me.local.get(HEAD), me.offset)
            verdict = judge(local, 0, log.high, log.read, chunk=rng.choice([1, 3, 50]))
            if verdict.keep:
                assert verdict.restore_after is not None
                last_head = log.records[max(o for o, (k, _) in log.records.items() if k == HEAD)][1]
                assert (verdict.missing_from is None) == (last_head == local.head), verdict
                me.restore(verdict.restore_after)
                mine = dict(me.local)
                _apply(mine, _redo_records(mine))
                truth = log.state()
                _apply(truth, _redo_records(truth))
                assert mine == truth, verdict
            else:
                compacted = any(o not in log.records for o in range(log.high))
                assert local.offset is None or _ahead(me.local, log, full) or compacted, verdict
                me.local, me.offset = {}, None
        if not me.local:
            if rng.random() < 0.2 and log.high:  # killed in the middle of its restore
                me.restore(None, upto=rng.randint(0, log.high))
                continue
            me.restore(None)
        me.run(rng.randint(0, 4), crash_mid_transaction=rng.random() < 0.4)


def _all_records(log: Changelog, before: list[Record]) -> dict[int, Record]:
    """The log as appended, compacted records included (the compacted ones from before)."""
    merged = dict(enumerate(before))
    merged.update(log.records)
    return merged


# --- the cases one by one ----------------------------------------------------------------------


def _log(*transactions: list[Record]) -> Changelog:
    log = Changelog()
    for records in transactions:
        log.append(records)
    return log


def _tx(n: int, *keys: str) -> list[Record]:
    writes = [(k.encode(), f"v{n}".encode()) for k in keys]
    return [(HEAD, pickle.dumps((n, writes))), *writes]


def _local(head_of: int | None, offset: int | None, log_tx: dict[int, list[Record]] | None = None) -> LocalPartition:
    head = None if head_of is None else (log_tx or {})[head_of][0][1]
    return LocalPartition("stock-state", 0, Path("-"), head, offset)


TX = {n: _tx(n, "a", "b") for n in range(1, 200)}  # 3 records each: the head at 3 * (n - 1)


def test_same_last_transaction_as_kafka_is_kept() -> None:
    log = _log(TX[1], TX[2], TX[3][:2])  # the third cut short in Kafka, whole locally
    verdict = judge(_local(3, 6, TX), 0, log.high, log.read)
    assert verdict == Verdict(True, verdict.reason, 6)


def test_a_last_transaction_kafka_never_received_is_deleted() -> None:
    log = _log(TX[1], TX[2])
    verdict = judge(_local(3, 5, TX), 0, log.high, log.read)
    assert not verdict.keep and "ahead" in verdict.reason


def test_a_transaction_sent_but_not_written_locally_moves_the_restore_back_to_the_local_head() -> None:
    # Killed after handing transaction 3 to the producer, before its local write; a poll had
    # already recorded the offset of one of its records (7): resuming there would skip its head.
    log = _log(TX[1], TX[2], TX[3])
    verdict = judge(_local(2, 7, TX), 0, log.high, log.read)
    assert verdict.keep and verdict.restore_after == 3


def test_a_store_behind_another_owners_transactions_is_kept_and_read_from_its_head() -> None:
    log = _log(*(TX[n] for n in range(1, 150)))
    verdict = judge(_local(40, 3 * 39 + 2, TX), 0, log.high, log.read, chunk=10)
    assert verdict.keep and verdict.restore_after == 3 * 39
    assert log.reads < 20  # two heads back, not the history


def test_an_offset_recorded_behind_the_local_head_searches_forward() -> None:
    log = _log(*(TX[n] for n in range(1, 10)))
    verdict = judge(_local(9, 3 * 5, TX), 0, log.high, log.read)
    assert verdict.keep and verdict.restore_after == 15


def test_the_search_back_stops_at_the_second_head_before_the_offset() -> None:
    log = _log(*(TX[n] for n in range(1, 150)))
    ahead = LocalPartition("stock-state", 0, Path("-"), b"never sent", 3 * 100)
    verdict = judge(ahead, 0, log.high, log.read, chunk=4)
    assert not verdict.keep
    assert log.reads < 3 * 49 + 10  # back to two heads, then forward to the end


@pytest.mark.parametrize(
    ("head_of", "offset", "high", "low", "why"),
    [
        (None, 5, 9, 0, "no transaction"),
        (2, None, 9, 0, "no changelog offset"),
        (2, 9, 9, 0, "past the changelog's end"),
        (2, 2, 9, 5, "precedes the log start"),
    ],
)
def test_what_cannot_be_proven_is_deleted(
    head_of: int | None, offset: int | None, high: int, low: int, why: str
) -> None:
    log = _log(TX[1], TX[2], TX[3])
    verdict = judge(_local(head_of, offset, TX), low, high, log.read)
    assert not verdict.keep and why in verdict.reason


def test_a_head_compacted_away_is_deleted() -> None:
    log = _log(TX[1], TX[2], TX[3])
    log.compact(below=log.high)  # the heads of 1 and 2 and their writes are gone
    verdict = judge(_local(2, 5, TX), 0, log.high, log.read)
    assert not verdict.keep


def test_the_recorded_offset_is_read_and_lowered_in_the_database(tmp_path: Path) -> None:
    from rocksdict import Options, Rdict

    path = tmp_path / "stock-state-0.db"
    db = Rdict(str(path), Options(raw_mode=True))
    db[HEAD] = b"head"
    db[PERSISTED_OFFSET_KEY] = b"41"
    db.close()
    assert read_local("stock-state", 0, path) == LocalPartition("stock-state", 0, path, b"head", 41)
    set_local_offset(path, 12)
    assert read_local("stock-state", 0, path).offset == 12


# --- reconcile: the decisions applied to the databases ---------------------------------------


class FakeReader:
    """ChangelogReader over in-memory changelogs, with record timestamps."""

    def __init__(self, logs: dict[tuple[str, int], Changelog], written_ms: int, retention_ms: int) -> None:
        self.logs, self.written_ms, self.retention_ms = logs, written_ms, retention_ms

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        return 0, self.logs[(topic, partition)].high

    def read(
        self, topic: str, partition: int, start: int, end: int
    ) -> Iterator[tuple[int, bytes | None, bytes | None]]:
        return self.logs[(topic, partition)].read(start, end)

    def timestamp_ms(self, topic: str, partition: int, offset: int) -> int:
        return self.written_ms

    def delete_retention_ms(self, topic: str) -> int:
        return self.retention_ms

    def close(self) -> None:
        pass


def _database(data_dir: Path, partition: int, head_of: int, offset: int) -> Path:
    from rocksdict import Options, Rdict

    path = data_dir / "v1" / "tables" / f"stock-state-{partition}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    db = Rdict(str(path), Options(raw_mode=True))
    db[HEAD] = TX[head_of][0][1]
    db[PERSISTED_OFFSET_KEY] = str(offset).encode()
    db.close()
    return path


@pytest.mark.parametrize(("written_ago_ms", "kept_behind"), [(1_000, True), (90_000_000, False)])
def test_reconcile_keeps_lowers_and_deletes(tmp_path: Path, written_ago_ms: int, kept_behind: bool) -> None:
    from config.settings import Settings
    from streams.local_state import reconcile_after_crash
    from streams.topics import Topics

    settings = Settings(data_dir=tmp_path, app_id="t")
    topic = Topics(settings).changelog("stock-state")
    logs = {
        (topic, 0): _log(TX[1], TX[2]),  # same last transaction: kept as it is
        (topic, 1): _log(TX[1], TX[2], TX[3]),  # behind transaction 3, its offset already past it
        (topic, 2): _log(TX[1], TX[2]),
    }  # ahead: transaction 3 never reached Kafka
    same, behind, ahead = _database(tmp_path, 0, 2, 5), _database(tmp_path, 1, 2, 7), _database(tmp_path, 2, 3, 5)
    now = 100_000_000_000
    said: list[str] = []
    reconcile_after_crash(settings, said.append, FakeReader(logs, now - written_ago_ms, 86_400_000), now)

    assert read_local("stock-state", 0, same).offset == 3  # back to its head: its writes are read again
    assert not ahead.exists()
    assert behind.exists() == kept_behind
    if kept_behind:
        assert read_local("stock-state", 1, behind).offset == 3
    else:
        assert "delete.retention.ms" in said[1]
    assert len(said) == 3 and "ahead of Kafka" in said[2]
