"""The declared topic configs (streams/topics.py): the tables' changelogs are compacted in a
way that keeps up with the writes (hourly segments, a low dirty ratio, tombstones kept long
enough for a restoring reader), every topic carries the deployment's replication settings, and
an existing topic is compared with its declaration: partitions, replicas, each declared key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.settings import Settings
from streams.topics import CHANGELOG, DAY_MS, HOUR_MS, TABLES, TopicDrift, Topics, TopicState, alignable, compare_topics


def test_every_changelog_is_compacted_with_hourly_segments() -> None:
    topics = Topics(Settings(app_id="app", topic_prefix="p.", outbox_topics=("oms.outbox",)))
    for table in TABLES:
        partitions, config = topics.all()[topics.changelog(table)]
        assert config == {**CHANGELOG, "min.insync.replicas": "1"}
    assert CHANGELOG["cleanup.policy"] == "compact"  # never time-retained: Faust's recovery stalls on gaps
    assert "retention.ms" not in CHANGELOG
    # The active segment is never compacted: it must roll within the hour.
    assert int(CHANGELOG["segment.ms"]) <= HOUR_MS
    assert int(CHANGELOG["segment.bytes"]) <= 128 * 1024 * 1024
    assert 0 < float(CHANGELOG["min.cleanable.dirty.ratio"]) <= 0.25
    # A tombstone outlives any restore; recent writes stay as written for a minute.
    assert int(CHANGELOG["delete.retention.ms"]) >= DAY_MS
    assert int(CHANGELOG["min.compaction.lag.ms"]) < int(CHANGELOG["segment.ms"])


def test_only_the_pipelines_own_topics_are_aligned() -> None:
    topics = Topics(Settings(app_id="app", topic_prefix="p.", outbox_topics=("oms.outbox",)))
    assert "oms.outbox" in topics.all()
    assert "oms.outbox" not in topics.owned()  # Debezium's: created if missing, never altered
    assert set(topics.owned()) == set(topics.all()) - {"oms.outbox"}


def test_replication_defaults_are_one_on_loopback_and_otherwise_survive_a_broker_loss() -> None:
    for bootstrap in ("127.0.0.1:9092", "127.0.0.1:40123", "localhost:9092,[::1]:9093"):  # a private broker too
        local = Settings(bootstrap_servers=bootstrap)
        assert (local.topic_replication_factor, local.topic_min_insync_replicas) == (1, 1), bootstrap
    cluster = Settings(bootstrap_servers="kafka-1.internal:9092")
    assert (cluster.topic_replication_factor, cluster.topic_min_insync_replicas) == (3, 2)
    assert Settings(bootstrap_servers="kafka-1.internal:9092", replication_factor=2).topic_min_insync_replicas == 1
    assert Settings(replication_factor=5, min_insync_replicas=3).topic_min_insync_replicas == 3
    with pytest.raises(ValidationError, match="min_insync_replicas"):
        Settings(replication_factor=2, min_insync_replicas=3)


def test_every_topic_created_carries_min_insync_replicas() -> None:
    settings = Settings(bootstrap_servers="kafka-1.internal:9092", outbox_topics=("oms.outbox",))
    for name, (_, config) in Topics(settings).all().items():
        assert config["min.insync.replicas"] == "2", name


DECLARED = {
    "orders": (4, {"cleanup.policy": "delete", "retention.ms": "604800000", "min.insync.replicas": "2"}),
    "app-stock-state-changelog": (4, {"cleanup.policy": "compact", "min.insync.replicas": "2"}),
}


def state(partitions: int = 4, replicas: int = 3, **config: str) -> TopicState:
    base = {"cleanup.policy": "delete", "retention.ms": "604800000", "min.insync.replicas": "2"}
    return TopicState(partitions, replicas, {**base, "max.message.bytes": "1048588", **config})


def test_a_topic_as_declared_shows_no_difference_and_undeclared_keys_are_not_compared() -> None:
    existing = {"orders": state(), "app-stock-state-changelog": state(**{"cleanup.policy": "compact"})}
    assert compare_topics(DECLARED, 3, existing) == []


def test_a_missing_topic_is_not_a_difference_it_is_created() -> None:
    assert compare_topics(DECLARED, 3, {}) == []


def test_every_difference_is_one_entry_partitions_replicas_then_declared_keys() -> None:
    existing = {
        "orders": state(partitions=6, replicas=1, **{"retention.ms": "-1", "min.insync.replicas": "1"}),
        "app-stock-state-changelog": state(),  # delete, not compact
        "someone-elses": state(partitions=1),
    }
    assert compare_topics(DECLARED, 3, existing) == [
        TopicDrift("app-stock-state-changelog", "cleanup.policy", "compact", "delete"),
        TopicDrift("orders", "partitions", "4", "6"),
        TopicDrift("orders", "replication.factor", "3", "1"),
        TopicDrift("orders", "min.insync.replicas", "2", "1"),
        TopicDrift("orders", "retention.ms", "604800000", "-1"),
    ]


def test_a_key_the_broker_does_not_report_is_a_difference() -> None:
    existing = {"orders": TopicState(4, 3, {"cleanup.policy": "delete", "min.insync.replicas": "2"})}
    assert compare_topics({"orders": DECLARED["orders"]}, 3, existing) == [
        TopicDrift("orders", "retention.ms", "604800000", None)
    ]


def test_partitions_and_replicas_are_only_reported_and_min_insync_never_exceeds_the_replicas() -> None:
    one_replica = state(replicas=1)
    assert alignable(TopicDrift("orders", "partitions", "4", "6"), one_replica)
    assert alignable(TopicDrift("orders", "replication.factor", "3", "1"), one_replica)
    assert alignable(TopicDrift("orders", "min.insync.replicas", "2", "1"), one_replica) == (
        "left as is (the topic has 1 replicas)"
    )
    assert alignable(TopicDrift("orders", "min.insync.replicas", "2", "1"), state(replicas=3)) is None
    assert alignable(TopicDrift("orders", "retention.ms", "604800000", "-1"), one_replica) is None


def test_a_difference_reads_as_one_line() -> None:
    line = TopicDrift("orders", "partitions", "4", "6").line("left as is")
    assert line == "topic orders differs from its declaration: partitions is 6, declared 4; left as is"
