"""Fixtures for tests on the real local broker: isolated deployments and worker processes.

Each deployment gets its own topic prefix, Faust app id (so its own changelogs and consumer
group) and state folder, so tests share the one broker without seeing each other.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from config.settings import Settings
from connectors.produce import EventPublisher
from connectors.tail import tail
from schemas.base import Event
from schemas.events import parse_event
from streams.topics import Topics, create_topics
from streams.worker_process import WorkerProcess, http_json


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(probe: Callable[[], Any], timeout_s: float = 60.0, interval_s: float = 0.5) -> Any:
    """Poll until ``probe`` returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s; last value: {last!r}")


@dataclass
class Deployment:
    settings: Settings
    env: dict[str, str]
    root: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def topics(self) -> Topics:
        return Topics(self.settings)

    def start_worker(self, name: str = "w1", data_dir: Path | None = None) -> WorkerProcess:
        data = data_dir or self.root / name
        env = {**self.env, "INVENTORY_DATA_DIR": str(data)}
        worker = WorkerProcess(env, self.root / f"{name}.log", free_port()).start()
        self.workers.append(worker)
        worker.wait_ready(timeout_s=120)
        return worker

    def publish(self, events: list[Event | dict[str, Any]]) -> None:
        publisher = EventPublisher(self.settings)
        for event in events:
            publisher.publish(parse_event(event) if isinstance(event, dict) else event)
        report = publisher.flush()
        assert not report.failed, report.failed

    def produce_raw(self, topic: str, key: bytes, value: bytes) -> None:
        from confluent_kafka import Producer

        from streams.kafka_config import producer_config

        producer = Producer(producer_config(self.settings))
        producer.produce(topic, key=key, value=value)
        assert producer.flush(10) == 0

    def read(self, topic: str, timeout_s: float = 10.0, idle_s: float = 3.0) -> list[dict[str, Any]]:
        """Every record on an output topic so far (decoded)."""
        return list(tail(self.settings, [topic], from_beginning=True, timeout_s=timeout_s, idle_s=idle_s))

    def position(self, worker: WorkerProcess, sku: str, warehouse: str) -> dict[str, Any] | None:
        status, body = http_json(f"{worker.url}/inventory/{quote(sku, safe='')}/{quote(warehouse, safe='')}")
        return body if status == 200 else None

    def order(self, worker: WorkerProcess, order_no: str) -> dict[str, Any] | None:
        status, body = http_json(f"{worker.url}/orders/{quote(order_no, safe='')}")
        return body if status == 200 else None


@pytest.fixture(scope="module")
def deployment(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One deployment shared by a module's tests."""
    yield from _deployment(kafka_bootstrap, tmp_path_factory)


@pytest.fixture
def fresh_deployment(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A deployment of its own: topics, consumer group and changelogs nobody else touched."""
    yield from _deployment(kafka_bootstrap, tmp_path_factory)


def _deployment(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, extra_env: dict[str, str] | None = None
) -> Iterator[Deployment]:
    """A deployment on ``kafka_bootstrap``; ``extra_env``: more ``INVENTORY_*`` settings for
    the test's clients and its workers alike (e.g. the client security settings)."""
    tag = uuid.uuid4().hex[:8]
    root = tmp_path_factory.mktemp(f"deploy-{tag}")
    env = {
        "INVENTORY_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "INVENTORY_TOPIC_PREFIX": f"t{tag}.",
        "INVENTORY_APP_ID": f"inventory-test-{tag}",
        "INVENTORY_PARTITIONS": "4",
        "INVENTORY_EXPIRY_CHECK_INTERVAL_S": "0.5",
        # Test days are dated in the past: a partition idle for 2 s falls back to the wall
        # clock and expires what is due, as a test that waits for its outcome expects.
        "INVENTORY_EXPIRY_GRACE_S": "0",
        "INVENTORY_EXPIRY_WALL_CLOCK_FALLBACK_S": "2",
        **(extra_env or {}),
    }
    fields = {
        "bootstrap_servers": kafka_bootstrap,
        "topic_prefix": env["INVENTORY_TOPIC_PREFIX"],
        "app_id": env["INVENTORY_APP_ID"],
        "partitions": 4,
        **{name.removeprefix("INVENTORY_").lower(): value for name, value in (extra_env or {}).items()},
    }
    settings = Settings(**fields)
    create_topics(settings)
    d = Deployment(settings=settings, env=env, root=root)
    try:
        yield d
    finally:  # also when a test iterating this generator fails inside its loop (it is closed, not resumed)
        for worker in d.workers:
            worker.kill()
        from confluent_kafka.admin import AdminClient

        from streams.kafka_config import admin_config

        admin = AdminClient(admin_config(settings))
        names = list(Topics(settings).all())
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception:  # noqa: BLE001 - best-effort cleanup of a throwaway deployment
                pass


class PrivateBroker:
    """A broker of one test's own (free ports, its own data folder, the shared jars), for
    tests that stop or restart the broker: the session's shared broker is never touched."""

    def __init__(self, root: Path) -> None:
        from streams import local_kafka

        shared = Settings()
        local_kafka.ensure_jars(shared)
        kafka_root = root / "kafka"
        kafka_root.mkdir(parents=True, exist_ok=True)
        libs = kafka_root / "libs"
        if not libs.exists():
            libs.symlink_to(local_kafka.KafkaPaths.of(shared).libs.resolve())
        port, cport = free_port(), free_port()
        self.settings = Settings(
            local_dir=root, local_kafka_port=port, local_controller_port=cport, bootstrap_servers=f"127.0.0.1:{port}"
        )
        self.bootstrap = self.settings.bootstrap_servers

    def start(self) -> None:
        from streams import local_kafka

        assert local_kafka.start(self.settings), "a broker already answered on the private port"

    def stop(self) -> None:
        from streams import local_kafka

        local_kafka.stop(self.settings)

    def deployment(self, tmp_path_factory: pytest.TempPathFactory) -> AbstractContextManager[Deployment]:
        """``with private_broker.deployment(...) as d:`` its workers are killed and its topics
        deleted when the block ends, however it ends."""
        return contextmanager(_deployment)(self.bootstrap, tmp_path_factory)


@pytest.fixture
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """A started broker of this test's own; stopped (if running) at the end."""
    broker = PrivateBroker(tmp_path_factory.mktemp("private-kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
