"""The benchmark peer: our stock-reservation core as a Quix Streams application.

    .venv-quix/bin/python -m bench.peer_quix.app --bootstrap 127.0.0.1:9092 \
        --topic-prefix PREFIX --group GROUP --state-dir DIR --expect N --stats-out FILE.json

It reads our input topics (``PREFIX`` + orders, shipments, stock-movements) in our Avro encoding,
applies our pure core (``apply_order``, ``stock_commands_for``, ``apply_stock``) against Quix's
RocksDB ``State`` in the same topology as ours (``group_by(sku)``, Quix's repartition topic, plays
stock-commands), and writes what the core emits, in our encoding, to ``PREFIX`` + ``quix.`` +
our output names (``--output-prefix``). It stops once ``--expect`` inputs and all they set in
motion are consumed, or after ``--idle-exit-s`` without a message, and writes its statistics as
JSON. The topology pictured, and what it leaves out: bench/peer_quix/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Authlib (under confluent-kafka's schema registry client, which Quix imports) warns that it
# is deprecated on every import, after forcing its warnings to "always": silence it after that.
from authlib.deprecate import AuthlibDeprecationWarning  # noqa: E402

warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)

from quixstreams import Application  # noqa: E402
from quixstreams.models import TopicConfig  # noqa: E402
from quixstreams.models.serializers import Deserializer, Serializer  # noqa: E402

from bench.peer_quix.stores import OrderRecords, StockRecords  # noqa: E402
from bench.peer_quix.topics import TopicNames  # noqa: E402
from config.settings import Settings  # noqa: E402
from schemas.codec import decode, encode  # noqa: E402
from schemas.internal import StockCommand  # noqa: E402
from schemas.outputs import OrderStatus, OrderStatusChanged  # noqa: E402
from schemas.topics import ROUTES  # noqa: E402
from tables.orders import ORDER_MESSAGES, apply_order  # noqa: E402
from tables.policy import CorePolicy  # noqa: E402
from tables.routing import is_order_scoped, stock_commands_for  # noqa: E402
from tables.stock import apply_stock  # noqa: E402

log = logging.getLogger("peer_quix")

# What a step emits: (destination topic, key, the event in our wire encoding). Plain values
# on purpose: at a branch Quix copies the value for each further branch with pickle, and
# pickling the contract objects themselves cost 10% of the CPU in a profile.
Out = tuple[str, bytes, bytes]
COMMANDS = "<stock commands: the group_by repartition topic>"


class WirePayload(Serializer):
    """An Out -> its bytes, made once by the step (the receipt keeps the same bytes)."""

    def __call__(self, value: Out, ctx: Any) -> bytes:
        return value[2]


class WireRecord(Deserializer):
    """Our Avro single-object bytes -> the contract object. Input from outside is validated
    (``validate=True``), our own hops are not, as in streams/app.py."""

    def __init__(self, validate: bool, on_read: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.validate = validate
        self.on_read = on_read

    def __call__(self, value: bytes, ctx: Any) -> Any:
        if self.on_read is not None:
            self.on_read()
        return decode(value, validate=self.validate)


def destinations(names: TopicNames) -> Callable[[object], tuple[str, str]]:
    """Which topic an emitted event goes to, and its key: our routing table (schemas/topics.py
    ``ROUTES``), as our worker routes; stock commands go to the group_by (``COMMANDS``)."""
    topics = {
        name: COMMANDS if name == "stock-commands" else names.topic(name)
        for name in {route.spec.name for route in ROUTES.values()}
    }

    def destination(event: object) -> tuple[str, str]:
        route = ROUTES.get(type(event).__name__)
        if route is None:
            raise TypeError(f"no destination for {type(event).__name__}")
        return topics[route.spec.name], route.key(event)

    return destination


@dataclass
class RunStats:
    """What the harness reads. Times are wall clock (``time.time()``)."""

    expect: int
    consumed: int = 0  # input messages (orders, shipments, stock-movements)
    produced: int = 0  # messages sent to the output topics
    internal_produced: int = 0  # sent to order-inbox and the repartition topic
    internal_consumed: int = 0
    errors: int = 0  # undecodable or failing messages, skipped (ours dead-letters them)
    orders_rejected: int = 0  # a preload can race orders ahead of the receipts that stock them
    first_input_ts: float | None = None
    last_output_ts: float | None = None
    stopped_ts: float | None = None  # after Quix's final checkpoint commit (producer flushed)
    first_input_cpu_s: float | None = None
    produced_by_topic: dict[str, int] = field(default_factory=dict)
    stop_reason: str = ""

    def input_read(self) -> None:
        if self.first_input_ts is None:
            self.first_input_ts = time.time()
            self.first_input_cpu_s = cpu_seconds()

    @property
    def quiescent(self) -> bool:
        return self.consumed >= self.expect and self.internal_consumed >= self.internal_produced


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build(args: argparse.Namespace, stats: RunStats) -> tuple[Application, IdleWatchdog]:
    settings = Settings(bootstrap_servers=args.bootstrap, topic_prefix=args.topic_prefix)
    policy = CorePolicy(
        warehouse_priority=settings.warehouse_priority,
        reorder_point=settings.default_reorder_point,
        count_history=settings.count_history,
        split_lines=settings.split_lines,
        receipt_retention_days=None,  # Quix state is per message key: no partition clock or index to prune by
    )
    names = TopicNames.of(args.topic_prefix, args.output_prefix)
    inputs = set(names.inputs)
    destination = destinations(names)

    def on_error(exc: BaseException, row: Any, logger: Any) -> bool:
        stats.errors += 1
        log.warning("skipped a message: %s: %s", type(exc).__name__, exc)
        return True  # carry on, as our agents do after dead-lettering

    def on_message_processed(topic: str, partition: int, offset: int) -> None:
        if topic in inputs:
            stats.consumed += 1
        else:
            stats.internal_consumed += 1
        watchdog.touch()
        if stats.quiescent:
            stats.stop_reason = "expected inputs consumed, internal topics drained"
            app.stop()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        state_dir=args.state_dir,
        auto_offset_reset="earliest",  # Quix defaults to "latest"; the inputs are preloaded
        commit_interval=args.commit_interval,
        consumer_poll_timeout=args.consumer_poll_timeout,
        processing_guarantee=args.processing_guarantee,
        on_consumer_error=on_error,
        on_processing_error=on_error,
        on_message_processed=on_message_processed,
        loglevel=args.loglevel,
    )
    watchdog = IdleWatchdog(app, args.idle_exit_s, stats)

    read_input = WireRecord(validate=True, on_read=stats.input_read)
    read_internal = WireRecord(validate=False)
    write = WirePayload()

    def input_topic(name: str) -> Any:
        return app.topic(name, key_deserializer="bytes", value_deserializer=read_input)

    orders_t = input_topic(names.orders)
    shipments_t = input_topic(names.shipments)
    movements_t = input_topic(names.stock_movements)
    # Order-inbox must be co-partitioned with orders: the same partition count, and Quix's
    # producer hashes keys with murmur2 as ours do, so an orderNo gets the same partition.
    partitions = orders_t.broker_config.num_partitions

    def own_topic(name: str, deserializer: Any = "bytes") -> Any:
        return app.topic(
            name,
            key_serializer="bytes",
            value_serializer=write,
            key_deserializer="bytes",
            value_deserializer=deserializer,
            config=TopicConfig(num_partitions=partitions, replication_factor=settings.replication_factor),
        )

    inbox_t = own_topic(names.order_inbox, read_internal)
    topics = {name: inbox_t if name == names.order_inbox else own_topic(name) for name in names.own}

    def outs(events: tuple[object, ...], payloads: tuple[bytes, ...]) -> list[Out]:
        result = []
        for event, payload in zip(events, payloads, strict=True):
            topic, key = destination(event)
            result.append((topic, key.encode(), payload))
        return result

    def topic_of(value: Out, key: Any, timestamp: int, headers: Any) -> Any:
        name = value[0]
        if name == names.order_inbox:
            stats.internal_produced += 1
        else:
            stats.produced += 1
            stats.produced_by_topic[name] = stats.produced_by_topic.get(name, 0) + 1
            stats.last_output_ts = time.time()
        return topics[name]

    def command_key(value: Out) -> bytes:
        stats.internal_produced += 1
        return value[1]

    def is_command(value: Out) -> bool:
        return value[0] == COMMANDS

    def is_not_command(value: Out) -> bool:
        return value[0] != COMMANDS

    # --- the steps: decode (the topic's deserializer), call the core, write the state, emit

    def order_step(message: Any, state: Any) -> list[Out]:
        if type(message) not in ORDER_MESSAGES:
            raise TypeError(f"{type(message).__name__} is not an order message")
        records = OrderRecords(state)
        outcome = apply_order(records, message, policy)
        payloads = tuple(encode(e) for e in outcome.events)
        if not outcome.duplicate:
            records.store(outcome, payloads)
            stats.orders_rejected += sum(
                1 for e in outcome.events if type(e) is OrderStatusChanged and e.status == OrderStatus.REJECTED
            )
        return outs(outcome.events, payloads)

    def route(event: Any) -> list[Out]:
        if is_order_scoped(event):  # ReturnInspected goes to its order, which decides
            return outs((event,), (encode(event),))
        commands = tuple(stock_commands_for(event))
        return outs(commands, tuple(encode(c) for c in commands))

    def stock_step(command: Any, state: Any) -> list[Out]:
        if not isinstance(command, StockCommand):
            raise TypeError(f"{type(command).__name__} is not a stock command")
        records = StockRecords(state)
        outcome = apply_stock(records, command, policy)
        payloads = tuple(encode(e) for e in outcome.events)
        if not outcome.duplicate:
            records.store(outcome, payloads)
        return outs(outcome.events, payloads)

    # --- the topology ------------------------------------------------------------------

    orders = app.dataframe(orders_t).concat(app.dataframe(shipments_t)).concat(app.dataframe(inbox_t))
    from_orders = orders.apply(order_step, stateful=True, expand=True)
    from_orders.filter(is_not_command).to_topic(topic_of, key=lambda v: v[1])
    order_commands = from_orders.filter(is_command)

    routed = app.dataframe(movements_t).apply(route, expand=True)
    routed.filter(is_not_command).to_topic(topic_of, key=lambda v: v[1])
    movement_commands = routed.filter(is_command)

    commands = order_commands.concat(movement_commands).group_by(
        command_key,
        name="sku",
        key_serializer="bytes",
        value_serializer=write,
        key_deserializer="bytes",
        value_deserializer=read_internal,
    )
    commands.apply(stock_step, stateful=True, expand=True).to_topic(topic_of, key=lambda v: v[1])
    return app, watchdog


class IdleWatchdog:
    """Stops the application after ``idle_s`` without a processed message."""

    def __init__(self, app: Application, idle_s: float, stats: RunStats) -> None:
        self.app = app
        self.idle_s = idle_s
        self.stats = stats
        self.last = time.monotonic()
        self._done = threading.Event()

    def touch(self) -> None:
        self.last = time.monotonic()

    def start(self) -> None:
        self.last = time.monotonic()
        threading.Thread(target=self._run, name="idle-watchdog", daemon=True).start()

    def stop(self) -> None:
        self._done.set()

    def _run(self) -> None:
        while not self._done.wait(0.5):
            if time.monotonic() - self.last > self.idle_s:
                self.stats.stop_reason = f"idle for {self.idle_s:g} s"
                self.app.stop()
                return


def summary(stats: RunStats, started_cpu_s: float) -> dict[str, Any]:
    cpu = cpu_seconds()
    first, last = stats.first_input_ts, stats.last_output_ts
    seconds = (last - first) if first is not None and last is not None else None
    return {
        "consumed": stats.consumed,
        "produced": stats.produced,
        "first_input_ts": first,
        "last_output_ts": last,
        "seconds": seconds,
        "events_per_s": (stats.consumed / seconds) if seconds else None,
        "cpu_s": cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        # beyond the contract:
        "cpu_s_processing": cpu - stats.first_input_cpu_s if stats.first_input_cpu_s is not None else None,
        "cpu_s_before_run": started_cpu_s,  # imports, schema registry, topic checks
        "seconds_to_stopped": (stats.stopped_ts - first) if first is not None and stats.stopped_ts else None,
        **{
            k: v
            for k, v in asdict(stats).items()
            if k not in ("consumed", "produced", "first_input_ts", "last_output_ts")
        },
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic-prefix", default="", help="prefix of our input topics (INVENTORY_TOPIC_PREFIX)")
    parser.add_argument(
        "--output-prefix",
        default=None,
        help="prefix of the peer's own topics (order-inbox and outputs); default TOPIC_PREFIX + 'quix.'",
    )
    parser.add_argument(
        "--group", required=True, help="consumer group; also names Quix's changelog and repartition topics"
    )
    parser.add_argument("--state-dir", required=True, help="Quix's RocksDB state folder")
    parser.add_argument(
        "--expect", type=int, required=True, help="stop after this many input messages (and their effects)"
    )
    parser.add_argument("--stats-out", type=Path, required=True)
    parser.add_argument("--idle-exit-s", type=float, default=60.0, help="stop after this long without a message")
    parser.add_argument(
        "--commit-interval", type=float, default=5.0, help="Quix checkpoint interval (its default: 5 s)"
    )
    parser.add_argument(
        "--consumer-poll-timeout",
        type=float,
        default=1.0,
        help="how long one consumer poll may block (Quix's default: 1 s)",
    )
    parser.add_argument("--processing-guarantee", choices=("at-least-once", "exactly-once"), default="at-least-once")
    parser.add_argument("--loglevel", default="WARNING")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.loglevel, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stats = RunStats(expect=args.expect)
    app, watchdog = build(args, stats)
    started_cpu_s = cpu_seconds()
    watchdog.start()
    try:
        app.run()
    finally:
        watchdog.stop()
        stats.stopped_ts = time.time()
        result = summary(stats, started_cpu_s)
        args.stats_out.parent.mkdir(parents=True, exist_ok=True)
        args.stats_out.write_text(json.dumps(result, indent=2) + "\n")
    brief = {
        k: result[k] for k in ("consumed", "produced", "seconds", "events_per_s", "cpu_s", "peak_rss_mb", "stop_reason")
    }
    print(f"peer_quix: {json.dumps(brief)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
