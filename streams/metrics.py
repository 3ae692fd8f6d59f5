"""The worker's metrics, with ``prometheus_client``: every family the worker exports is declared here.

- Each :class:`Metrics` owns its ``CollectorRegistry`` (never the process-wide one): several
  apps or tests in one process never collide. Every family has HELP; counters end in
  ``_total``, timings in ``_seconds`` (the list: docs/metrics.md).
- Values read when scraped (consumer lag per partition, table keys) come from the callables
  given to :meth:`Metrics.read_on_scrape`; one that raises empties its family, not the page.
- :meth:`Metrics.render` negotiates the format with the scraper's ``Accept`` header.
- The per-record methods keep each label's child: no label lookup on the hot path.
No Faust, no Kafka: the worker and its edges call in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# No ``<name>_created`` series next to every counter and histogram: in the plain text format they
# are separate gauges, doubling the series Prometheus stores for a timestamp nobody reads here.
# prometheus_client's switch is process-wide; this module is where every family is declared.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated

INF = float("inf")
# Upper bounds (seconds) of the per-message processing histogram.
PROCESSING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, INF)
# Upper bounds (seconds) of the durability flush and offset commit histograms: a flush waits for
# the broker's acknowledgements (acks=all), milliseconds on a healthy cluster, seconds when not.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, INF)

CONSUMER_LAG = "inventory_consumer_lag"
TABLE_KEYS = "inventory_table_keys"


@dataclass(frozen=True)
class Totals:
    """What the dashboard's stats tick shows: records read by topic, dead letters written."""

    events_in: dict[str, int]
    dead_letters: int


class Metrics:
    """The worker's counters and histograms on a registry of their own (``registry``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._events_in = Counter(
            "inventory_events_in_total", "Records read from each topic by the agents.", ["topic"], registry=r
        )
        self._events_out = Counter(
            "inventory_events_out_total",
            "Records handed to the producer for each topic (outputs, internal topics, dead letters, webhook inputs).",
            ["topic"],
            registry=r,
        )
        self._dead_letters = Counter(
            "inventory_dead_letters_total",
            "Records written to the dead-letter topic, by the topic they were read from and the reason "
            "(error_type: DECODE, VALIDATION, TOO_LARGE, PROCESSING, ...).",
            ["topic", "error_type"],
            registry=r,
        )
        self._duplicates = Counter(
            "inventory_duplicates_total",
            "Messages an agent recognised as already applied (a receipt or an envelope number) and skipped.",
            ["agent"],
            registry=r,
        )
        self._processing = Histogram(
            "inventory_processing_seconds",
            "Time an agent took to apply one message (decode, core, table writes), duplicates included.",
            ["agent"],
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self._flush = Histogram(
            "inventory_durability_flush_seconds",
            "Time of the durability flush before each offset commit: until the broker acknowledged every "
            "record handed to the record sink (streams/checkpoint.py, steps 4-5).",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self._commit = Histogram(
            "inventory_offset_commit_seconds",
            "Time of each Faust offset commit that committed offsets, the durability flush included.",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self._webhook_requests = Counter(
            "inventory_webhook_requests_total",
            "Webhook requests answered, by source system, HTTP status and reason (accepted, unauthorized, "
            "too_large, not_json, invalid, media_type, timeout, disabled, registry_unavailable, not_written).",
            ["source", "status", "reason"],
            registry=r,
        )
        self._webhook_events = Counter(
            "inventory_webhook_events_accepted_total",
            "Events accepted by the webhook (acknowledged by the broker), by source system.",
            ["source"],
            registry=r,
        )
        self._in: dict[str, Any] = {}
        self._out: dict[str, Any] = {}
        self._timing: dict[str, Any] = {}
        self._dups: dict[str, Any] = {}
        self.flushes = 0  # durability flushes observed (the commit timer tells a commit that flushed)

    # --- the per-record path ------------------------------------------------------------------

    def received(self, topic: str) -> None:
        child = self._in.get(topic)
        if child is None:
            child = self._in[topic] = self._events_in.labels(topic)
        child.inc()

    def sent(self, topic: str) -> None:
        child = self._out.get(topic)
        if child is None:
            child = self._out[topic] = self._events_out.labels(topic)
        child.inc()

    def processed(self, agent: str, seconds: float, duplicate: bool) -> None:
        if duplicate:
            dup = self._dups.get(agent)
            if dup is None:
                dup = self._dups[agent] = self._duplicates.labels(agent)
            dup.inc()
        child = self._timing.get(agent)
        if child is None:
            child = self._timing[agent] = self._processing.labels(agent)
        child.observe(seconds)

    # --- the rarer events ---------------------------------------------------------------------

    def dead_letter(self, topic: str, error_type: str) -> None:
        self._dead_letters.labels(topic, error_type).inc()

    def flushed(self, seconds: float) -> None:
        """A durability flush (Checkpoint.flush) took ``seconds``."""
        self.flushes += 1
        self._flush.observe(seconds)

    def committed(self, seconds: float) -> None:
        """An offset commit round that committed offsets took ``seconds``."""
        self._commit.observe(seconds)

    def webhook_answered(self, source: str, status: int, reason: str, events: int = 0) -> None:
        """A webhook request was answered ``status`` for ``reason``; ``events`` of it accepted."""
        self._webhook_requests.labels(source, str(status), reason).inc()
        if events:
            self._webhook_events.labels(source).inc(events)

    # --- reading ------------------------------------------------------------------------------

    def read_on_scrape(
        self,
        consumer_lag: Callable[[], Mapping[tuple[str, int], float]],
        table_keys: Callable[[], Mapping[str, float]],
    ) -> None:
        """Export the consumer lag per (topic, partition) and the tables' key estimates, read
        when scraped. Call once per Metrics."""
        self.registry.register(_ScrapeTime(consumer_lag, table_keys))

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition page and its content type, in the format ``accept`` asks for."""
        return render(self.registry, accept)

    def totals(self) -> Totals:
        events_in = {s.labels["topic"]: int(s.value) for s in _samples(self._events_in, "inventory_events_in_total")}
        dead = sum(int(s.value) for s in _samples(self._dead_letters, "inventory_dead_letters_total"))
        return Totals(events_in, dead)

    def value(self, name: str, **labels: str) -> float:
        """The current value of sample ``name`` with exactly ``labels`` (0 when absent): for tests."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found


def render(registry: Collector, accept: str | None = None) -> tuple[bytes, str]:
    """``registry``'s exposition page and its content type, in the format ``accept`` asks for
    (Prometheus text when it asks for none)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def _samples(collector: Counter, name: str) -> Iterator[Any]:
    for family in collector.collect():
        for sample in family.samples:
            if sample.name == name:
                yield sample


class _ScrapeTime:
    """A collector of the values computed when scraped."""

    def __init__(
        self,
        consumer_lag: Callable[[], Mapping[tuple[str, int], float]],
        table_keys: Callable[[], Mapping[str, float]],
    ) -> None:
        self.consumer_lag, self.table_keys = consumer_lag, table_keys

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            CONSUMER_LAG,
            "Records of an input or internal topic partition assigned to this worker not yet committed "
            "(high watermark minus committed offset); the tables' changelogs are left out.",
            labels=["topic", "partition"],
        )
        keys = GaugeMetricFamily(
            TABLE_KEYS,
            "RocksDB's estimate of the keys in this worker's partitions of each table.",
            labels=["table"],
        )
        return lag, keys

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        lag, keys = self._families()
        try:
            for (topic, partition), value in sorted(self.consumer_lag().items()):
                lag.add_metric([topic, str(partition)], value)
        except Exception:  # noqa: BLE001 - a scrape must not fail for one family
            log.warning("metrics: consumer lag not read", exc_info=True)
        try:
            for table, value in sorted(self.table_keys().items()):
                keys.add_metric([table], value)
        except Exception:  # noqa: BLE001 - a scrape must not fail for one family
            log.warning("metrics: table keys not read", exc_info=True)
        return [lag, keys]
