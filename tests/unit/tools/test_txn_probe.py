"""The pure parts of the transactional-sink probe (bench/txn_probe.py): the group metadata bytes
confluent-kafka's ``send_offsets_to_transaction`` takes, pinned to the writer of the librdkafka
that confluent-kafka bundles (its format is private to a librdkafka build), and the figures the
probe derives. The probe checks the same bytes against the broker."""

from __future__ import annotations

import struct

import pytest
from confluent_kafka import KafkaException, Producer, TopicPartition

from bench.txn_probe import (
    group_metadata,
    librdkafka_group_metadata,
    relate_to_worker,
    weighted_percentile,
)


@pytest.mark.parametrize(
    ("group", "generation", "member", "instance"),
    [
        ("inventory-center", 7, "faust-0.15.3-3f0c1e2a-9b1d-4c55-8f1e-0d2b5a6c7e8f", None),
        ("g", -1, "", None),  # group-id-only metadata
        ("inventory-center", 2**31 - 1, "m", "worker-1"),  # a static member
    ],
)
def test_group_metadata_is_what_the_bundled_librdkafka_writes(
    group: str, generation: int, member: str, instance: str | None
) -> None:
    assert group_metadata(group, generation, member, instance) == librdkafka_group_metadata(
        group, generation, member, instance
    )


def test_group_metadata_layout() -> None:
    assert group_metadata("g", 3, "m") == b"CGMDv2:" + struct.pack("=i", 3) + b"g\0m\0\x01"


def test_confluent_kafka_reads_the_bytes_and_refuses_others() -> None:
    """A transactional producer accepts the bytes (it fails later, for want of a transaction),
    and refuses bytes that are not group metadata: the reader is the one we write for."""
    producer = Producer({"transactional.id": "unit-no-broker", "bootstrap.servers": "127.0.0.1:1"})
    offsets = [TopicPartition("t", 0, 1)]
    with pytest.raises(KafkaException) as not_in_transaction:
        producer.send_offsets_to_transaction(offsets, group_metadata("g", 1, "m"), 0.1)
    assert "group metadata" not in str(not_in_transaction.value)
    with pytest.raises(KafkaException, match="consumer group metadata"):
        producer.send_offsets_to_transaction(offsets, b"not metadata at all", 0.1)


def test_group_metadata_refuses_what_librdkafka_would_not_read() -> None:
    with pytest.raises(ValueError, match="printable"):
        group_metadata("库存", 1, "m")
    with pytest.raises(ValueError, match="printable"):
        group_metadata("g", 1, "m\n")


def test_weighted_percentile() -> None:
    assert weighted_percentile([(5.0, 1), (1.0, 98), (9.0, 1)], 50) == 1.0
    assert weighted_percentile([(5.0, 1), (1.0, 98), (9.0, 1)], 99) == 5.0
    assert weighted_percentile([(5.0, 1), (1.0, 98), (9.0, 1)], 100) == 9.0
    assert weighted_percentile([(2.0, 0)], 50) != weighted_percentile([(2.0, 0)], 50)  # nan: nothing counted


def _case(
    mode: str,
    every_ms: float,
    offered: float | None,
    commits_per_s: float,
    visible: tuple[float, float],
    broker: float = 0.2,
    client: float = 0.1,
) -> dict[str, object]:
    return {
        "mode": mode,
        "commit_every_ms": every_ms,
        "offered_per_s": offered,
        "commits_per_s": commits_per_s,
        "visible_ms": {"p50": visible[0], "p99": visible[1]},
        "broker_cpu_share": broker,
        "client_cpu_share": client,
        "retry_backoff_ms": 100,
    }


def test_relate_to_worker() -> None:
    cases = [
        _case("idempotent", 10, 10_000, 90.0, (6.0, 9.0)),
        _case("transactional", 100, 10_000, 9.5, (60.0, 110.0)),
        _case("transactional", 1000, 10_000, 1.0, (500.0, 990.0), broker=0.25, client=0.12),
        _case("transactional", 10, 10_000, 51.0, (20.0, 40.0), broker=0.5, client=0.17),
        _case("transactional", 0, 10_000, 101.0, (7.0, 12.0), broker=0.75, client=0.22),
        _case("transactional", 10, None, 80.0, (9.0, 20.0)),  # unpaced: no latency figure
    ]
    out = relate_to_worker(
        cases,
        batch_window_ms=10,
        stateful_agents=2,
        partitions=4,
        hops=3,
        records_per_order=27,
        redo_per_order=(0.5, 7.0),
        internal_receipts_per_order=6,
    )
    assert out["most_transactions_per_s_one_producer"] == 101.0
    assert out["partition_transactions_per_s_when_batches_fill"] == 800.0
    assert out["one_kafka_transaction_per_redo_record_fits"] is False
    assert [c["commit_every_ms"] for c in out["cadences"]] == [0, 10, 100, 1000]
    assert out["cadences"][2]["over_3_hops_ms"] == {"p50": 180.0, "p99_bound": 330.0}
    # from 1 to 101 commits/s (back to back) the broker went from 0.25 to 0.75 of a core
    assert out["cpu_per_commit_estimate"]["transactional"] == {
        "broker_cpu_ms": 5.0,
        "client_cpu_ms": 1.0,
        "from_cases_ms": [1000, 0],
    }
    assert "idempotent" not in out["cpu_per_commit_estimate"]  # one case: no estimate
    assert out["saved_per_order"]["total"] == [6.5, 13.0]
