"""The declared topic configs (streams/topics.py): the tables' changelogs are compacted in a
way that keeps up with the writes (hourly segments, a low dirty ratio, tombstones kept long
enough for a restoring reader), and an existing topic's config is compared key by key."""

from __future__ import annotations

from config.settings import Settings
from streams.topics import CHANGELOG, DAY_MS, HOUR_MS, TABLES, Topics, config_changes


def test_every_changelog_is_compacted_with_hourly_segments() -> None:
    topics = Topics(Settings(app_id="app", topic_prefix="p.", outbox_topics=("oms.outbox",)))
    for table in TABLES:
        partitions, config = topics.all()[topics.changelog(table)]
        assert config == CHANGELOG
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


def test_config_changes_names_the_declared_keys_that_differ() -> None:
    current = {
        "cleanup.policy": "compact",
        "segment.ms": "604800000",
        "min.compaction.lag.ms": "60000",
        "max.message.bytes": "1048588",
    }
    assert config_changes(current, CHANGELOG) == {
        k: v for k, v in CHANGELOG.items() if k not in ("cleanup.policy", "min.compaction.lag.ms")
    }
    assert config_changes({**current, **CHANGELOG}, CHANGELOG) == {}
