"""The worker's metrics (streams/metrics.py): Prometheus' own parser reads the page, every family
has HELP and the type it claims, names carry units and counters end in ``_total``, registries do
not share families, values read when scraped appear with their labels and a failing reader
leaves its family empty instead of failing the page; the content type follows the Accept header.
And the newest dead letters kept for the dashboard (streams/dead_letters.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streams.dead_letters import LatestDeadLetters, dead_letter_of
from streams.metrics import COMMIT_BUCKETS, Metrics

TYPES = {
    "inventory_events_in": "counter",
    "inventory_events_out": "counter",
    "inventory_dead_letters": "counter",
    "inventory_duplicates": "counter",
    "inventory_processing_seconds": "histogram",
    "inventory_durability_flush_seconds": "histogram",
    "inventory_offset_commit_seconds": "histogram",
    "inventory_webhook_requests": "counter",
    "inventory_webhook_events_accepted": "counter",
    "inventory_consumer_lag": "gauge",
    "inventory_table_keys": "gauge",
}


def busy() -> Metrics:
    m = Metrics()
    m.received("orders")
    m.received("orders")
    m.sent("stock-commands")
    m.processed("order-agent", 0.002, False)
    m.processed("order-agent", 0.0001, True)
    m.dead_letter("orders", "DECODE")
    m.dead_letter("orders", "DECODE")
    m.dead_letter("stock-movements", "VALIDATION")
    m.flushed(0.004)
    m.committed(0.006)
    m.webhook_answered("wms", 202, "accepted", 3)
    m.webhook_answered("wms", 401, "unauthorized")
    m.read_on_scrape(lambda: {("orders", 0): 4, ("orders", 1): 0}, lambda: {"stock": 12})
    return m


def families(m: Metrics, accept: str | None = None) -> dict[str, Any]:
    body, _ = m.render(accept)
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def test_every_family_parses_with_help_type_and_conventional_name() -> None:
    found = families(busy())
    assert {name: f.type for name, f in found.items()} == TYPES
    for name, f in found.items():
        assert f.documentation, name
        for sample in f.samples:
            if f.type == "counter":
                assert sample.name.endswith("_total"), sample.name
            assert not sample.name.endswith("_created"), sample.name  # no created series
        if f.type == "histogram":
            assert name.endswith("_seconds"), name


def samples(m: Metrics, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    f = families(m)[family]
    return {tuple(sorted(s.labels.items())): s.value for s in f.samples}


def test_labelled_values() -> None:
    m = busy()
    assert samples(m, "inventory_dead_letters") == {
        (("error_type", "DECODE"), ("topic", "orders")): 2,
        (("error_type", "VALIDATION"), ("topic", "stock-movements")): 1,
    }
    assert samples(m, "inventory_consumer_lag") == {
        (("partition", "0"), ("topic", "orders")): 4,
        (("partition", "1"), ("topic", "orders")): 0,
    }
    assert samples(m, "inventory_webhook_requests") == {
        (("reason", "accepted"), ("source", "wms"), ("status", "202")): 1,
        (("reason", "unauthorized"), ("source", "wms"), ("status", "401")): 1,
    }
    assert m.value("inventory_webhook_events_accepted_total", source="wms") == 3
    assert m.value("inventory_events_in_total", topic="orders") == 2
    assert m.value("inventory_duplicates_total", agent="order-agent") == 1
    assert m.value("inventory_processing_seconds_count", agent="order-agent") == 2
    assert m.value("inventory_processing_seconds_bucket", agent="order-agent", le="0.0005") == 1
    assert m.value("inventory_durability_flush_seconds_count") == 1 and m.flushes == 1
    assert m.value("inventory_offset_commit_seconds_bucket", le="0.01") == 1
    assert COMMIT_BUCKETS[-1] == float("inf")
    assert m.totals().events_in == {"orders": 2} and m.totals().dead_letters == 3


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()  # a second one would raise "Duplicated timeseries" on a shared registry
    a.received("orders")
    assert a.value("inventory_events_in_total", topic="orders") == 1
    assert b.value("inventory_events_in_total", topic="orders") == 0


def test_a_failing_scrape_reader_empties_its_family_only() -> None:
    m = Metrics()
    m.received("orders")

    def broken() -> dict[tuple[str, int], float]:
        raise RuntimeError("no consumer yet")

    m.read_on_scrape(broken, lambda: {"orders": 5})
    found = families(m)
    assert found["inventory_consumer_lag"].samples == []
    assert samples(m, "inventory_table_keys") == {(("table", "orders"),): 5}
    assert m.value("inventory_events_in_total", topic="orders") == 1


def test_the_content_type_follows_the_accept_header() -> None:
    m = busy()
    assert m.render()[1] == "text/plain; version=0.0.4; charset=utf-8"
    body, content_type = m.render("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")


def test_the_dashboard_keeps_the_newest_dead_letters_first_and_bounded() -> None:
    latest = LatestDeadLetters(2)
    at = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    for offset in range(3):
        latest.add(dead_letter_of("orders", 1, offset, b"OMS1", b"\xff" * 10, "DECODE", "x" * 5000, at, 4))
    shown = latest.latest()
    assert [d["sourceOffset"] for d in shown] == [2, 1] and latest.written == 3
    assert shown[0] == {
        "sourceTopic": "orders",
        "sourcePartition": 1,
        "sourceOffset": 2,
        "errorType": "DECODE",
        "error": "x" * 1000,
        "failedAt": "2026-12-07T10:00:00+00:00",
        "key": "OMS1",
        "payloadSize": 10,
        "payloadSha256": shown[0]["payloadSha256"],
    }
    assert latest.latest(1) == shown[:1]
    none_kept = LatestDeadLetters(0)
    none_kept.add(dead_letter_of("orders", 0, 0, None, None, "DECODE", "e", at, 4))
    assert none_kept.latest() == [] and none_kept.written == 1
