"""Issue 16 on the real broker: an existing topic that differs from its declaration is
reported, one WARNING line per difference, by the function (a structured list), by the topic
step a worker runs at start and by ``python -m streams.topics``; partitions are never changed,
config keys are set back to the declaration only with ``align_topic_configs`` on.

Each test pre-creates its topics under a prefix of its own on the shared broker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from config.settings import REPO_ROOT, Settings
from streams.kafka_config import admin_config
from streams.topics import TopicDrift, Topics, TopicsNotCreated, create_topics, topic_drift
from streams.worker_process import WorkerProcess
from tests.integration.conftest import free_port, wait_until
from tests.integration.test_topic_config import topic_config

pytestmark = pytest.mark.kafka

# What the orders topic was created with by hand, against RETAINED and min.insync.replicas 1.
OTHER = {"cleanup.policy": "delete", "retention.ms": "-1", "min.insync.replicas": "2"}


@pytest.fixture
def settings(kafka_bootstrap: str) -> Iterator[Settings]:
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=f"drift{tag}.", app_id=f"inventory-drift-{tag}", partitions=4
    )
    admin = AdminClient(admin_config(settings))
    orders = Topics(settings).orders
    admin.create_topics([NewTopic(orders, num_partitions=2, replication_factor=1, config=OTHER)])[orders].result(30)
    wait_until(lambda: _described(admin, orders), timeout_s=30, interval_s=0.1)  # the broker's metadata has it
    yield settings
    for future in admin.delete_topics(list(Topics(settings).all()), operation_timeout=30).values():
        try:
            future.result()
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


def _described(admin: Any, name: str) -> bool:
    try:
        return name in admin.list_topics(name, timeout=10).topics and bool(topic_config(admin, name))
    except Exception:  # noqa: BLE001 - not known yet
        return False


def test_the_differences_are_a_structured_list_and_nothing_is_changed(settings: Settings) -> None:
    orders = Topics(settings).orders
    assert topic_drift(settings) == [
        TopicDrift(orders, "partitions", "4", "2"),
        TopicDrift(orders, "min.insync.replicas", "1", "2"),
        TopicDrift(orders, "retention.ms", "604800000", "-1"),
    ]
    # A cluster meant to keep 2 replicas: the topic's 1 is a difference too.
    two = settings.model_copy(update={"replication_factor": 2})
    assert TopicDrift(orders, "replication.factor", "2", "1") in topic_drift(two)
    admin = AdminClient(admin_config(settings))
    assert {k: topic_config(admin, orders)[k] for k in OTHER} == OTHER
    assert len(admin.list_topics(orders, timeout=10).topics[orders].partitions) == 2


def test_the_worker_topic_step_reports_each_difference_and_sets_only_config_keys(
    settings: Settings, caplog: Any
) -> None:
    orders = Topics(settings).orders
    with caplog.at_level("WARNING", logger="streams.topics"):
        created = create_topics(settings)
    assert orders not in created and len(created) == len(Topics(settings).all()) - 1
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert lines == [
        f"topic {orders} differs from its declaration: partitions is 2, declared 4; "
        "left as is (change it with the cluster's own tools)",
        f"topic {orders} differs from its declaration: min.insync.replicas is 2, declared 1; set to the declared value",
        f"topic {orders} differs from its declaration: retention.ms is -1, declared 604800000; "
        "set to the declared value",
    ]
    admin = AdminClient(admin_config(settings))
    wait_until(lambda: topic_config(admin, orders)["retention.ms"] == "604800000", timeout_s=10, interval_s=0.1)
    assert topic_config(admin, orders)["min.insync.replicas"] == "1"
    assert len(admin.list_topics(orders, timeout=10).topics[orders].partitions) == 2  # never changed
    assert [d.setting for d in topic_drift(settings)] == ["partitions"]  # what is left


def test_with_alignment_off_every_difference_is_only_reported(settings: Settings, caplog: Any) -> None:
    hands_off = settings.model_copy(update={"align_topic_configs": False})
    with caplog.at_level("WARNING", logger="streams.topics"):
        create_topics(hands_off)
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 3 and all(line.endswith("left as is (align_topic_configs is off)") for line in lines[1:])
    admin = AdminClient(admin_config(settings))
    assert {k: topic_config(admin, Topics(settings).orders)[k] for k in OTHER} == OTHER


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVENTORY_")}
    return env | {
        "INVENTORY_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "INVENTORY_TOPIC_PREFIX": settings.topic_prefix,
        "INVENTORY_APP_ID": settings.app_id,
        "INVENTORY_PARTITIONS": "4",
    }


def test_a_worker_start_logs_one_line_per_difference(settings: Settings, tmp_path: Any) -> None:
    env = {**_env(settings), "INVENTORY_DATA_DIR": str(tmp_path / "worker")}
    worker = WorkerProcess(env, tmp_path / "worker.log", free_port()).start()
    try:
        worker.wait_ready(timeout_s=120)
    finally:
        worker.stop()
    lines = [line for line in worker.log_tail(2000).splitlines() if "differs from its declaration" in line]
    # the worker's log format (config/logs.py): [time] [pid] [LEVEL] logger: message
    assert len(lines) == 3 and all("[WARNING] streams.topics: topic " in line for line in lines), lines
    assert [line.split("streams.topics: ", 1)[1].split(": ")[1].split(" is ")[0] for line in lines] == [
        "partitions",
        "min.insync.replicas",
        "retention.ms",
    ]


def test_the_command_line_check_prints_one_warning_line_per_difference(settings: Settings) -> None:
    env = _env(settings)
    done = subprocess.run(
        [sys.executable, "-m", "streams.topics", "check"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    warnings = [line for line in done.stdout.splitlines() if line.startswith("WARNING topic ")]
    assert len(warnings) == 3 and all("differs from its declaration" in line for line in warnings), done.stdout


def test_more_replicas_than_brokers_is_one_line_naming_the_setting(kafka_bootstrap: str) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = Settings(
        bootstrap_servers=kafka_bootstrap, topic_prefix=f"rf{tag}.", app_id=f"inventory-rf-{tag}", replication_factor=3
    )
    with pytest.raises(TopicsNotCreated) as refused:
        create_topics(settings)  # the single local broker: nothing is created
    assert "INVENTORY_REPLICATION_FACTOR" in str(refused.value) and "\n" not in str(refused.value)
