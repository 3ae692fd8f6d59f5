"""A changelog topic created by an earlier version (compacted, default segment settings)
gets the declared segment and cleaner settings when the worker's topic step runs again:
``create_topics`` alters the existing topics the pipeline owns, key by key."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from streams.kafka_config import admin_config
from streams.topics import CHANGELOG, TABLES, create_topics
from tests.integration.conftest import Deployment, wait_until

pytestmark = pytest.mark.kafka

# What a changelog created before issue 12 had beyond COMPACTED: the broker's defaults.
OLD = {
    "segment.ms": "604800000",
    "segment.bytes": "1073741824",
    "min.cleanable.dirty.ratio": "0.5",
    "delete.retention.ms": "86400000",
}


def topic_config(admin: Any, name: str) -> dict[str, str]:
    """A topic's effective config. A topic created a moment ago may be unknown to the broker that
    answers describe requests for a little while (its metadata lags the controller's): waited for."""
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    deadline = time.monotonic() + 10
    while True:
        try:
            entries = admin.describe_configs([resource], request_timeout=30)[resource].result()
        except KafkaException as exc:
            if "UNKNOWN_TOPIC_OR_PART" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        return {k: e.value for k, e in entries.items()}


def test_an_existing_changelog_gets_the_declared_segment_and_cleaner_settings(fresh_deployment: Deployment) -> None:
    settings = fresh_deployment.settings
    admin = AdminClient(admin_config(settings))
    changelogs = [fresh_deployment.topics.changelog(table) for table in TABLES]
    resources = [
        ConfigResource(
            ConfigResource.Type.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in OLD.items()
            ],
        )
        for name in changelogs
    ]
    for future in admin.incremental_alter_configs(resources, request_timeout=30).values():
        future.result()
    for name in changelogs:  # as an earlier version left it (config changes apply within ms)
        wait_until(lambda: {k: topic_config(admin, name)[k] for k in OLD} == OLD, timeout_s=10, interval_s=0.1)

    assert create_topics(settings) == []  # nothing to create: every topic exists

    for name in changelogs:
        wait_until(
            lambda: {k: topic_config(admin, name)[k] for k in CHANGELOG} == CHANGELOG, timeout_s=10, interval_s=0.1
        )
    orders = fresh_deployment.topics.orders
    assert topic_config(admin, orders)["retention.ms"] == "604800000"  # the others as declared, untouched


def test_a_topic_that_matches_its_declaration_is_not_altered(fresh_deployment: Deployment, caplog: Any) -> None:
    with caplog.at_level("WARNING", logger="streams.topics"):
        assert create_topics(fresh_deployment.settings) == []
    assert not [r for r in caplog.records if "differed from its declaration" in r.getMessage()]
