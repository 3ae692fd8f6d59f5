"""Tail any pipeline topic as JSON lines: ``python -m connectors.tail inventory-changes``.

Decodes each record by the writer schema it names, and prints it in camelCase JSON with its
``eventType``, topic, partition and offset. Reads without committing (a throwaway group), so
tailing never disturbs the pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from config.logs import configure_logging
from config.settings import Settings, get_settings
from schemas.codec import CodecError
from streams.kafka_config import consumer_config, refusal
from streams.wire import RegistryUnavailable, Wire


def as_json(record: Any) -> dict[str, Any]:
    if hasattr(record, "model_dump"):
        body: dict[str, Any] = record.model_dump(mode="json", by_alias=True)
    else:  # a state record (dataclass)
        import dataclasses

        body = json.loads(json.dumps(dataclasses.asdict(record), default=str))
    return {"eventType": type(record).__name__, **body}


def tail(
    settings: Settings,
    topics: list[str],
    from_beginning: bool = True,
    timeout_s: float | None = None,
    max_records: int | None = None,
    idle_s: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield decoded records (as JSON-ready dicts with their coordinates)."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        consumer_config(
            settings,
            group_id=f"tail-{uuid.uuid4().hex[:8]}",
            **{"auto.offset.reset": "earliest" if from_beginning else "latest"},
        )
    )
    consumer.subscribe(topics)
    wire = Wire(settings)
    started = last = time.monotonic()
    seen = 0
    try:
        while True:
            now = time.monotonic()
            if timeout_s is not None and now - started > timeout_s:
                return
            if idle_s is not None and seen and now - last > idle_s:
                return
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                continue
            last = time.monotonic()
            coordinates = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
            try:
                value = msg.value()
                if value is None:
                    raise CodecError("no value (a tombstone)")
                record = as_json(wire.decode(value, validate=False))
            except (CodecError, RegistryUnavailable) as exc:
                record = {"eventType": None, "undecodable": str(exc)}
            yield {**record, "_coordinates": coordinates}
            seen += 1
            if max_records is not None and seen >= max_records:
                return
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topics", nargs="+", help="topic names (the prefix from settings is added)")
    parser.add_argument("--latest", action="store_true", help="only records from now on")
    parser.add_argument("--max", type=int, default=None, help="stop after this many records")
    parser.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    refused = refusal(settings)
    if refused is not None:  # a consumer would retry in silence
        print(refused[1], file=sys.stderr)
        return refused[0]
    names = [f"{settings.topic_prefix}{t}" for t in args.topics]
    try:
        for record in tail(settings, names, not args.latest, args.timeout, args.max):
            print(json.dumps(record, ensure_ascii=False), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
