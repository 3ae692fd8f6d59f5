"""The local broker really works: create a topic, produce, consume, delete."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from config.settings import get_settings

pytestmark = pytest.mark.kafka


def _client_config(bootstrap: str) -> dict[str, Any]:
    settings = get_settings()
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "security.protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        conf["sasl.mechanism"] = settings.sasl_mechanism
        conf["sasl.username"] = settings.sasl_username
        if settings.sasl_password is not None:
            conf["sasl.password"] = settings.sasl_password.get_secret_value()
    return conf


def test_produce_and_consume_one_message(kafka_bootstrap: str) -> None:
    conf = _client_config(kafka_bootstrap)
    topic = f"{get_settings().topic_prefix}it-local-kafka-{uuid.uuid4().hex[:12]}"
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    try:
        key, value = b"sku-1", f"hello {uuid.uuid4()}".encode()
        delivered: list[Any] = []
        producer = Producer({**conf, "acks": "all", "enable.idempotence": True})
        producer.produce(topic, key=key, value=value, on_delivery=lambda err, msg: delivered.append(err or msg))
        assert producer.flush(30) == 0, "message still queued after 30 s"
        assert len(delivered) == 1
        assert not isinstance(delivered[0], KafkaError), delivered[0]
        assert delivered[0].offset() == 0

        consumer = Consumer(
            {
                **conf,
                "group.id": f"it-local-kafka-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.subscribe([topic])
            received = None
            deadline = time.monotonic() + 30
            while received is None and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                assert msg.error() is None, msg.error()
                received = msg
            assert received is not None, "no message consumed within 30 s"
            assert (received.topic(), received.key(), received.value()) == (topic, key, value)
        finally:
            consumer.close()
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)
    deadline = time.monotonic() + 10  # deletion reaches the metadata cache asynchronously
    while topic in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    assert topic not in admin.list_topics(timeout=10).topics
