"""Read processes: stock queries answered from the compacted ``inventory-changes`` topic, apart
from the workers (``python -m streams.reader``, ``inventory-center reader``).

Each process reads every partition from the beginning and keeps the highest ``version`` per
position (a change read twice or late is skipped: any read order ends the same), and answers
in the worker's JSON (``streams/answers.py``): positions, SKUs, batches. Every answer states
its freshness (``X-Inventory-Behind``, ``X-Inventory-Caught-Up-Ms``); ``/ready`` is 503 until
the topic was read to its end. Bodies are encoded once per version; the HTTP/1.1 server is a
plain asyncio protocol; the Kafka consumer runs in its own thread. The routes, headers,
processes and refusals: docs/http.md; why this design: docs/decisions.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from streams.answers import MAX_BATCH, error_json, position_json, sku_json
from streams.metrics import render

log = logging.getLogger("streams.reader")

MAX_HEAD = 16 * 1024  # request line and headers
OPEN_PATHS = frozenset({b"/health", b"/ready"})


# --- the positions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One decoded ``InventoryChanged``, its answer body encoded."""

    sku: str
    warehouse_code: str
    version: int
    body: dict[str, Any]
    encoded: bytes


def change_of(obj: Any) -> Change:
    """The answer for an ``InventoryChanged`` (``schemas/outputs.py``)."""
    body = position_json(obj.sku, obj, obj.updated_at or obj.occurred_at)  # a record older than updatedAt: its event
    return Change(obj.sku, obj.warehouse_code, obj.version, body, dumps(body))


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Replica:
    """The newest version of every position read so far, with its encoded answers. Not thread
    safe: one thread (the event loop's) applies and reads."""

    def __init__(self) -> None:
        self._positions: dict[str, dict[str, Change]] = {}  # sku -> warehouse -> newest change
        self._skus: dict[str, bytes] = {}  # sku -> encoded answer, until one of its positions changes
        self.applied = 0  # changes that moved a position
        self.stale = 0  # changes at or below a version held (re-sent or read again)

    def apply(self, changes: Iterable[Change]) -> None:
        for c in changes:
            held = self._positions.setdefault(c.sku, {})
            current = held.get(c.warehouse_code)
            if current is not None and current.version >= c.version:
                self.stale += 1
                continue
            held[c.warehouse_code] = c
            self._skus.pop(c.sku, None)
            self.applied += 1

    def __len__(self) -> int:
        return sum(len(p) for p in self._positions.values())

    def position(self, sku: str, warehouse_code: str) -> bytes | None:
        change = self._positions.get(sku, {}).get(warehouse_code)
        return None if change is None else change.encoded

    def version(self, sku: str, warehouse_code: str) -> int | None:
        change = self._positions.get(sku, {}).get(warehouse_code)
        return None if change is None else change.version

    def sku(self, sku: str) -> bytes | None:
        encoded = self._skus.get(sku)
        if encoded is None:
            held = self._positions.get(sku)
            if not held:
                return None
            positions = [held[wh].body for wh in sorted(held)]
            encoded = self._skus[sku] = dumps(sku_json(sku, positions))
        return encoded

    def batch(self, keys: Sequence[str], lookup: Any) -> bytes:
        items, missing = [], []
        for k in keys:
            encoded = lookup(k)
            if encoded is None:
                missing.append(k)
            else:
                items.append(b"%s:%s" % (dumps(k), encoded))
        return b'{"items":{%s},"missing":%s}' % (b",".join(items), dumps(missing))

    def skus(self, skus: Sequence[str]) -> bytes:
        return self.batch(skus, self.sku)

    def positions(self, keys: Sequence[str]) -> bytes:
        def one(k: str) -> bytes | None:
            sku, _, wh = k.partition("|")
            return self.position(sku, wh)

        return self.batch(keys, one)


# --- reading the topic --------------------------------------------------------------------------


class Freshness:
    """How far behind the topic's end this process is (written by the consumer thread)."""

    def __init__(self) -> None:
        self.behind = -1  # records published and not applied (-1: not known yet)
        self.caught_up_at: float | None = None  # monotonic time it last had nothing to read
        self.ready = False  # every partition read to its end once
        self.partitions: dict[int, tuple[int, int]] = {}  # partition -> (next offset, high watermark)
        self.unreadable = 0

    def caught_up_ms(self) -> int:
        return -1 if self.caught_up_at is None else int((time.monotonic() - self.caught_up_at) * 1000)


class ChangeFeed(threading.Thread):
    """Reads every partition of ``inventory-changes`` from the beginning, decodes in this
    thread and hands each batch of changes to ``deliver`` (called on the event loop)."""

    def __init__(self, settings: Any, loop: asyncio.AbstractEventLoop, replica: Replica, freshness: Freshness) -> None:
        super().__init__(name="inventory-changes-feed", daemon=True)
        self.settings, self.loop, self.replica, self.freshness = settings, loop, replica, freshness
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

        from streams.kafka_config import consumer_config
        from streams.topics import Topics
        from streams.wire import Wire

        topic = Topics(self.settings).inventory_changes
        wire = Wire(self.settings)
        consumer = Consumer(
            consumer_config(
                self.settings,
                group_id=f"{self.settings.app_id}-reader-{os.getpid()}",  # never joins, never commits
                **{"enable.partition.eof": True, "fetch.wait.max.ms": 50},
            )
        )
        try:
            while not self._stopping.is_set():
                metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
                if metadata is not None and metadata.partitions and metadata.error is None:
                    break
                log.warning("reader: topic %s not found yet; waiting", topic)
                self._stopping.wait(2.0)
            else:
                return
            partitions = sorted(metadata.partitions)
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            ended: set[int] = set()
            nexts = {p: 0 for p in partitions}
            while not self._stopping.is_set():
                messages = consumer.consume(num_messages=1000, timeout=0.2)
                changes: list[Change] = []
                at_end = not messages
                for m in messages:
                    error = m.error()
                    if error is not None:
                        eof_partition = m.partition()
                        if error.code() == KafkaError._PARTITION_EOF and eof_partition is not None:
                            ended.add(eof_partition)
                        else:
                            log.warning("reader: %s", error)
                        continue
                    partition, offset = m.partition(), m.offset()
                    if partition is None or offset is None:  # typed optional by the client; a record has both
                        continue
                    nexts[partition] = offset + 1
                    value = m.value()
                    if value is None:
                        continue  # a tombstone: the workers never delete a position
                    try:
                        changes.append(change_of(wire.decode(value, validate=False)))
                    except Exception as exc:  # noqa: BLE001 - one record must not stop the answers
                        self.freshness.unreadable += 1
                        log.error("reader: %s[%d]@%d unreadable, skipped: %s", topic, m.partition(), m.offset(), exc)
                if changes:
                    self.loop.call_soon_threadsafe(self.replica.apply, changes)
                self._measure(consumer, topic, nexts, at_end and len(ended) == len(partitions))
                if len(ended) == len(partitions) and not self.freshness.ready:
                    self.loop.call_soon_threadsafe(self._ready)
        except Exception:
            log.exception("reader: the change feed failed")
            os.kill(os.getpid(), signal.SIGTERM)  # a read process without its feed must not answer
        finally:
            consumer.close()

    def _ready(self) -> None:
        self.freshness.ready = True  # after every change read so far is applied (same loop)
        log.info("reader: caught up: %d positions", len(self.replica))

    def _measure(self, consumer: Any, topic: str, nexts: dict[int, int], quiet: bool) -> None:
        from confluent_kafka import TopicPartition

        behind, partitions = 0, {}
        for p, next_offset in nexts.items():
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
            except Exception:  # noqa: BLE001 - not fetched yet
                high = -1
            partitions[p] = (next_offset, high)
            if high >= 0:
                behind += max(0, high - next_offset)
        f = self.freshness
        f.partitions, f.behind = partitions, behind
        if behind == 0 and quiet:
            f.caught_up_at = time.monotonic()


# --- the HTTP server ------------------------------------------------------------------------------

REASONS = {
    200: b"OK",
    400: b"Bad Request",
    401: b"Unauthorized",
    404: b"Not Found",
    405: b"Method Not Allowed",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def _code(value: str) -> bool:
    from schemas.base import CODE_PATTERN

    global _CODE_RE
    if _CODE_RE is None:
        import re

        _CODE_RE = re.compile(CODE_PATTERN)
    return bool(_CODE_RE.match(value)) and len(value) <= 64


_CODE_RE: Any = None


class Server:
    """The routes over one replica; ``answer(method, target, accept)`` -> (status, body, content
    type). Pure of sockets, so it can be tested without one. ``/metrics`` renders this process's
    registry (:class:`ReaderCollector`); ``answered`` counts every response by status."""

    def __init__(self, replica: Replica, freshness: Freshness, token: str | None) -> None:
        self.replica, self.freshness = replica, freshness
        self._bearer = None if token is None else f"Bearer {token}".encode()
        self.answered: dict[int, int] = {}  # status -> responses sent (the protocol counts them)
        self.registry = CollectorRegistry()
        self.registry.register(ReaderCollector(self))

    def allowed(self, path: bytes, authorization: bytes | None) -> bool:
        if self._bearer is None or path in OPEN_PATHS:
            return True
        return authorization is not None and hmac.compare_digest(authorization.strip(), self._bearer)

    def answer(self, method: bytes, target: bytes, accept: bytes | None = None) -> tuple[int, bytes, bytes]:
        path, _, query = target.partition(b"?")
        if method != b"GET":
            return 405, error(405, "only GET is served"), JSON
        if path == b"/ping":
            return 200, b"pong", TEXT
        if path.startswith(b"/inventory/"):
            return self.inventory(path)
        if path == b"/inventory":
            return self.batch(query)
        if path == b"/health":
            return 200, dumps(self.health()), JSON
        if path == b"/ready":
            ready = self.freshness.ready
            body = dumps({"ready": ready, "notReadyBecause": [] if ready else ["reading inventory-changes to its end"]})
            return (200 if ready else 503), body, JSON
        if path == b"/metrics":
            body, content_type = render(self.registry, None if accept is None else accept.decode("latin-1"))
            return 200, body, content_type.encode()
        return 404, error(404, "no such path"), JSON

    def inventory(self, path: bytes) -> tuple[int, bytes, bytes]:
        text = path.decode("utf-8", "replace")
        parts = text.split("/")[2:]  # "", "inventory", ...: split before decoding (a code may hold "/")
        if "%" in text:
            parts = [unquote(part) for part in parts]
        if len(parts) == 2:
            sku, wh = parts
            body = self.replica.position(sku, wh)
            if body is not None:
                return 200, body, JSON
            if not _code(sku) or not _code(wh):
                return 400, error(400, "sku and warehouseCode must be codes"), JSON
            return 404, error(404, f"no position for sku {sku} in warehouse {wh}"), JSON
        if len(parts) == 1 and parts[0]:
            body = self.replica.sku(parts[0])
            if body is not None:
                return 200, body, JSON
            if not _code(parts[0]):
                return 400, error(400, "sku must be a code"), JSON
            return 404, error(404, f"unknown sku {parts[0]}"), JSON
        return 404, error(404, "no such path"), JSON

    def batch(self, query: bytes) -> tuple[int, bytes, bytes]:
        params = dict(p.partition("=")[::2] for p in unquote(query.decode("utf-8", "replace")).split("&") if p)
        if "skus" in params:
            skus = list(dict.fromkeys(s for s in params["skus"].split(",") if s))
            if not skus or len(skus) > MAX_BATCH or not all(_code(s) for s in skus):
                return 400, error(400, f"skus: 1 to {MAX_BATCH} comma-separated codes"), JSON
            return 200, self.replica.skus(skus), JSON
        if "positions" in params:
            keys = list(dict.fromkeys(k for k in params["positions"].split(",") if k))
            if (
                not keys
                or len(keys) > MAX_BATCH
                or not all("|" in k and all(_code(x) for x in k.split("|", 1)) for k in keys)
            ):
                return 400, error(400, f"positions: 1 to {MAX_BATCH} comma-separated sku|warehouseCode"), JSON
            return 200, self.replica.positions(keys), JSON
        return 400, error(400, "give skus=A,B or positions=A|WH1,B|WH2"), JSON

    def health(self) -> dict[str, Any]:
        f = self.freshness
        return {
            "status": "ok",
            "ready": f.ready,
            "positions": len(self.replica),
            "behind": f.behind,
            "caughtUpMsAgo": f.caught_up_ms(),
            "unreadable": f.unreadable,
            "partitions": {str(p): {"next": n, "highWatermark": h} for p, (n, h) in sorted(f.partitions.items())},
        }

    def freshness_headers(self) -> bytes:
        f = self.freshness
        return b"X-Inventory-Behind: %d\r\nX-Inventory-Caught-Up-Ms: %d\r\n" % (f.behind, f.caught_up_ms())


class ReaderCollector:
    """A read process's metrics, read from its counters when scraped (the request path only
    adds to plain ints). Each process of a ``--processes`` group counts its own."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        f, r = self.server.freshness, self.server.replica
        requests = CounterMetricFamily(
            "inventory_reader_requests_total", "HTTP responses sent by this process, by status.", labels=["status"]
        )
        for status, count in sorted(self.server.answered.items()):
            requests.add_metric([str(status)], count)
        caught_up_ms = f.caught_up_ms()
        return [
            requests,
            GaugeMetricFamily("inventory_reader_positions", "Positions (sku, warehouse) held.", value=len(r)),
            CounterMetricFamily(
                "inventory_reader_changes_applied_total", "InventoryChanged records that moved a position.", r.applied
            ),
            CounterMetricFamily(
                "inventory_reader_changes_stale_total",
                "InventoryChanged records at or below the version held (read again or re-sent), skipped.",
                r.stale,
            ),
            CounterMetricFamily(
                "inventory_reader_unreadable_total",
                "Records of inventory-changes that could not be decoded.",
                f.unreadable,
            ),
            GaugeMetricFamily(
                "inventory_reader_behind_records",
                "Records of inventory-changes not yet read (all partitions).",
                f.behind,
            ),
            GaugeMetricFamily(
                "inventory_reader_caught_up_age_seconds",
                "Seconds since this process last had read every partition to its end (-1: not yet).",
                -1.0 if caught_up_ms < 0 else caught_up_ms / 1000,
            ),
            GaugeMetricFamily(
                "inventory_reader_ready", "1 once inventory-changes was read to its end, else 0.", int(f.ready)
            ),
        ]


JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"


def error(status: int, message: str) -> bytes:
    return dumps(error_json(status, message))


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and pipelining, GET only, no request bodies."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: Any = None
        self.buffer = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        out = []
        close = False
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    out.append(self.response(431, error(431, "request head too large"), JSON, b"HTTP/1.1", True))
                    close = True
                    buffer = b""
                break
            head, buffer = buffer[:end], buffer[end + 4 :]
            line, _, headers = head.partition(b"\r\n")
            request = line.split(b" ")
            lower = headers.lower()
            if len(request) != 3 or _has_body(lower):
                out.append(self.response(400, error(400, "GET without a body only"), JSON, b"HTTP/1.1", True))
                close = True
                break
            method, target, version = request
            connection = _header(lower, lower, b"connection")
            close = connection == b"close" if version == b"HTTP/1.1" else connection != b"keep-alive"
            path = target.partition(b"?")[0]
            if self.server.allowed(path, _header(headers, lower, b"authorization")):
                accept = _header(headers, lower, b"accept") if path == b"/metrics" else None
                status, body, kind = self.server.answer(method, target, accept)
            else:
                status, body, kind = 401, error(401, "missing or wrong bearer token"), JSON
            out.append(self.response(status, body, kind, version, close))
            if close:
                break
        self.buffer = buffer
        if out:
            self.transport.write(b"".join(out))
        if close:
            self.transport.close()

    def response(self, status: int, body: bytes, kind: bytes, version: bytes, close: bool) -> bytes:
        answered = self.server.answered
        answered[status] = answered.get(status, 0) + 1
        extra = b"WWW-Authenticate: Bearer\r\n" if status == 401 else b""
        return b"%s %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s%s\r\n%s" % (
            b"HTTP/1.1",
            status,
            REASONS.get(status, b""),
            kind,
            len(body),
            self.server.freshness_headers(),
            extra,
            b"Connection: close\r\n" if close else (b"Connection: keep-alive\r\n" if version != b"HTTP/1.1" else b""),
            body,
        )


def _has_body(lower: bytes) -> bool:
    """The request announces a body (refused: a GET server cannot tell where the next begins)."""
    if _header(lower, lower, b"transfer-encoding") is not None:
        return True
    length = _header(lower, lower, b"content-length")
    return length is not None and length != b"0"


def _header(headers: bytes, lower: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case) in ``headers`` (``lower``: the same, lowered)."""
    at = -1
    while True:
        at = lower.find(name + b":", at + 1)
        if at < 0:
            return None
        if at == 0 or lower[at - 1 : at] == b"\n":
            return headers[at + len(name) + 1 :].split(b"\r\n", 1)[0].strip()


# --- processes ---------------------------------------------------------------------------------------


def listening_socket(host: str, port: int, share: bool = False) -> socket.socket:
    """A listening socket; ``share``: with ``SO_REUSEPORT``, for the processes of one
    ``--processes`` group. The group's parent first binds without it, so a second group (or a
    single process) on a port already served fails instead of silently taking half the traffic."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if share:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(settings: Any, host: str, port: int, share: bool = False) -> None:
    """One read process: the feed thread and the server, until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    replica, freshness = Replica(), Freshness()
    token = settings.read_token.get_secret_value() if settings.read_token is not None else None
    server = Server(replica, freshness, token)
    feed = ChangeFeed(settings, loop, replica, freshness)
    feed.start()
    listener = await loop.create_server(lambda: HttpProtocol(server), sock=listening_socket(host, port, share))
    log.info(
        "reader %d: serving http://%s:%d (inventory-changes of prefix %r)",
        os.getpid(),
        host,
        port,
        settings.topic_prefix,
    )
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    listener.close()
    feed.stop()
    feed.join(timeout=5)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m streams.reader",
        description="Read processes: answer stock queries from the compacted inventory-changes topic, apart from "
        "the workers (same JSON as the worker's /inventory views). Settings come from the environment "
        "(INVENTORY_*), as for the worker.",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="read processes sharing the port (default: settings reader_processes)",
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: settings reader_port)")
    parser.add_argument("--bind", default=None, help="interface (default: settings web_bind, 127.0.0.1)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child of --processes
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from config.logs import configure_logging
    from config.settings import get_settings

    settings = get_settings()
    configure_logging(settings)
    host = args.bind or settings.web_bind
    port = args.port if args.port is not None else settings.reader_port
    processes = args.processes if args.processes is not None else settings.reader_processes
    if args.one or processes == 1:
        try:
            asyncio.run(serve(settings, host, port, share=args.one))
        except OSError as exc:
            print(f"reader: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        listening_socket(host, port).close()  # fail here, once, if anything serves the port
    except OSError as exc:
        print(f"reader: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    children = [
        subprocess.Popen([sys.executable, "-m", "streams.reader", "--one", "--bind", host, "--port", str(port)])
        for _ in range(processes)
    ]
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping.is_set() and all(c.poll() is None for c in children):
        stopping.wait(0.5)
    failed = not stopping.is_set()
    for c in children:
        if c.poll() is None:
            c.terminate()
    for c in children:
        try:
            c.wait(timeout=10)
        except subprocess.TimeoutExpired:
            c.kill()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
