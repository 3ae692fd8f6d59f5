"""streams/reader.py without a broker: the replica keeps the newest version of each position
whatever order its changes arrive in, answers in the worker's JSON, and the HTTP protocol
serves keep-alive, pipelined and refused requests correctly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from schemas.outputs import InventoryChanged
from streams.answers import position_json, sku_json
from streams.reader import Change, Freshness, HttpProtocol, Replica, Server, change_of

T0 = datetime(2025, 11, 22, 8, 0, tzinfo=UTC)


def changed(sku: str, wh: str, version: int, available: int = 10) -> InventoryChanged:
    return InventoryChanged.model_construct(
        sku=sku,
        warehouse_code=wh,
        available_qty=available,
        reserved_qty=version,
        in_transit_qty=1,
        total_qty=available + version + 1,
        event_id=f"{sku}|{wh}|v{version}",
        on_hand_qty=available + version,
        presold_qty=0,
        outbound_qty=0,
        damaged_qty=0,
        version=version,
        cause_event_type="OrderCreated",
        cause_event_id=f"e{version}",
        occurred_at=T0 + timedelta(minutes=version),
    )


def body(encoded: bytes | None) -> Any:
    assert encoded is not None
    return json.loads(encoded)


def test_a_change_answers_as_the_worker_writes_a_position() -> None:
    c = change_of(changed("SKU1", "WH1", 3))
    assert (
        json.loads(c.encoded) == c.body == position_json("SKU1", changed("SKU1", "WH1", 3), T0 + timedelta(minutes=3))
    )
    assert c.body["updatedAt"] == "2025-11-22T08:03:00+00:00" and c.body["reservedQty"] == 3


def test_the_newest_version_wins_and_older_or_equal_ones_are_counted_stale() -> None:
    r = Replica()
    r.apply([change_of(changed("SKU1", "WH1", 2)), change_of(changed("SKU1", "WH1", 1))])
    r.apply([change_of(changed("SKU1", "WH1", 2, available=99))])  # same version: a re-send, skipped
    assert body(r.position("SKU1", "WH1"))["version"] == 2 and body(r.position("SKU1", "WH1"))["availableQty"] == 10
    assert (r.applied, r.stale, len(r)) == (1, 2, 1)
    assert r.position("SKU1", "WH2") is None and r.position("SKU2", "WH1") is None and r.sku("SKU2") is None


def test_a_sku_answer_is_encoded_again_after_any_of_its_positions_changes() -> None:
    r = Replica()
    r.apply([change_of(changed("SKU1", "WH2", 1)), change_of(changed("SKU1", "WH1", 1))])
    first = r.sku("SKU1")
    assert r.sku("SKU1") is first  # encoded once
    assert [p["warehouseCode"] for p in body(first)["warehouses"]] == ["WH1", "WH2"]
    r.apply([change_of(changed("SKU1", "WH2", 2, available=5))])
    again = body(r.sku("SKU1"))
    positions = [change_of(changed("SKU1", "WH1", 1)).body, change_of(changed("SKU1", "WH2", 2, available=5)).body]
    assert again == sku_json("SKU1", positions) and again["network"]["availableQty"] == 15


def test_batches_answer_items_and_missing() -> None:
    r = Replica()
    r.apply([change_of(changed("SKU1", "WH1", 1)), change_of(changed("SKU2", "WH1", 4))])
    skus = json.loads(r.skus(["SKU1", "NOPE", "SKU2"]))
    assert set(skus["items"]) == {"SKU1", "SKU2"} and skus["missing"] == ["NOPE"]
    assert skus["items"]["SKU2"] == body(r.sku("SKU2"))
    positions = json.loads(r.positions(["SKU2|WH1", "SKU1|WH9"]))
    assert positions == {"items": {"SKU2|WH1": body(r.position("SKU2", "WH1"))}, "missing": ["SKU1|WH9"]}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["A", "B", "C"]), st.sampled_from(["WH1", "WH2"]), st.integers(1, 6)),
        min_size=1,
        max_size=40,
    ),
    st.randoms(use_true_random=False),
    st.integers(1, 5),
)
def test_any_arrival_order_with_duplicates_ends_at_the_newest_versions(
    changes: list[tuple[str, str, int]], rng: Any, batches: int
) -> None:
    """Partitions read in any interleaving, records read again after a restart: same answers."""
    made = [change_of(changed(s, w, v)) for s, w, v in changes]
    in_order = Replica()
    in_order.apply(sorted(made, key=lambda c: c.version))
    shuffled = made + rng.sample(made, len(made) // 2)  # some read twice
    rng.shuffle(shuffled)
    other = Replica()
    size = -(-len(shuffled) // batches)
    for start in range(0, len(shuffled), size):
        other.apply(shuffled[start : start + size])
    newest = {(s, w): max(v for s2, w2, v in changes if (s2, w2) == (s, w)) for s, w, _ in changes}
    for (s, w), v in newest.items():
        assert in_order.position(s, w) == other.position(s, w) and body(other.position(s, w))["version"] == v
    for s in {s for s, _, _ in changes}:
        assert in_order.sku(s) == other.sku(s)


# --- the server and its protocol -------------------------------------------------------------------


def server(token: str | None = None, ready: bool = True) -> Server:
    r = Replica()
    r.apply([change_of(changed("SKU1", "WH1", 7)), change_of(changed("SKU/2", "WH1", 1))])
    f = Freshness()
    f.ready, f.behind = ready, 0
    return Server(r, f, token)


class Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


def exchange(s: Server, *chunks: bytes) -> tuple[list[tuple[int, dict[str, str], bytes]], bool]:
    """Feed ``chunks`` to one connection; its responses (status, headers, body) and whether it closed."""
    protocol, transport = HttpProtocol(s), Transport()
    protocol.connection_made(transport)
    for chunk in chunks:
        protocol.data_received(chunk)
    responses, data = [], transport.written
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        n = int(headers["Content-Length"])
        responses.append((int(lines[0].split(" ")[1]), headers, rest[:n]))
        data = rest[n:]
    return responses, transport.closed


def get(path: str, *headers: str, version: str = "HTTP/1.1") -> bytes:
    return "\r\n".join([f"GET {path} {version}", "Host: x", *headers, "", ""]).encode()


def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    (a, b, c), closed = exchange(
        server(), get("/inventory/SKU1/WH1") + get("/ping")[:10], get("/ping")[10:], get("/inventory/SKU1")
    )
    assert not closed
    assert a[0] == 200 and json.loads(a[2])["version"] == 7 and a[1]["Content-Type"] == "application/json"
    assert a[1]["X-Inventory-Behind"] == "0" and "X-Inventory-Caught-Up-Ms" in a[1]
    assert (b[0], b[2]) == (200, b"pong")
    assert c[0] == 200 and json.loads(c[2])["network"]["reservedQty"] == 7


def test_not_found_bad_codes_and_percent_encoded_codes() -> None:
    (a, b, c, d, e), _ = exchange(
        server(),
        get("/inventory/SKU1/WH9")
        + get("/inventory/SKU1/W%20H")
        + get("/inventory/SKU%2F2")
        + get("/inventoryX?skus=SKU1")
        + get("/inventory?skus=SKU1,SKU%2F2"),
    )
    assert a[0] == 404 and json.loads(a[2]) == {"error": "no position for sku SKU1 in warehouse WH9", "status": 404}
    assert b[0] == 400 and c[0] == 200 and json.loads(c[2])["sku"] == "SKU/2"
    assert d[0] == 404 and e[0] == 200 and set(json.loads(e[2])["items"]) == {"SKU1", "SKU/2"}


def test_batches_refuse_too_many_or_malformed_keys() -> None:
    many = ",".join(f"S{i}" for i in range(201))
    (a, b, c, d), _ = exchange(
        server(),
        get(f"/inventory?skus={many}")
        + get("/inventory?positions=SKU1")
        + get("/inventory")
        + get("/inventory?positions=SKU1%7CWH1"),
    )
    assert [a[0], b[0], c[0], d[0]] == [400, 400, 400, 200]
    assert json.loads(d[2])["items"]["SKU1|WH1"]["version"] == 7


def test_close_http_1_0_and_requests_with_bodies() -> None:
    [(status, headers, _)], closed = exchange(server(), get("/ping", "Connection: close"))
    assert status == 200 and headers["Connection"] == "close" and closed
    [(status, _, _)], closed = exchange(server(), get("/ping", version="HTTP/1.0"))
    assert status == 200 and closed
    [(status, headers, _)], closed = exchange(server(), get("/ping", "Connection: keep-alive", version="HTTP/1.0"))
    assert not closed and headers["Connection"] == "keep-alive"
    [(status, _, _)], closed = exchange(server(), get("/ping", "Content-Length: 3") + b"abc" + get("/ping"))
    assert status == 400 and closed  # the rest of the stream cannot be trusted
    [(status, _, _)], closed = exchange(server(), b"POST /ping HTTP/1.1\r\n\r\n")
    assert status == 405 and not closed


def test_a_head_that_never_ends_is_refused() -> None:
    [(status, _, _)], closed = exchange(server(), b"GET /ping HTTP/1.1\r\nX: " + b"a" * 17_000)
    assert status == 431 and closed


def test_with_a_token_every_path_but_the_probes_needs_it() -> None:
    s = server(token="s3cret")
    responses, _ = exchange(
        s,
        get("/inventory/SKU1/WH1")
        + get("/ping", "authorization: Bearer wrong")
        + get("/health")
        + get("/ready")
        + get("/inventory/SKU1/WH1", "Authorization: Bearer s3cret"),
    )
    assert [r[0] for r in responses] == [401, 401, 200, 200, 200]
    assert responses[0][1]["WWW-Authenticate"] == "Bearer" and b"s3cret" not in b"".join(r[2] for r in responses)


def test_ready_waits_for_the_topic_end_and_metrics_count() -> None:
    s = server(ready=False, token="s3cret")
    auth = "Authorization: Bearer s3cret"
    (ready, refused, metrics), _ = exchange(s, get("/ready") + get("/ping") + get("/metrics", auth))
    assert ready[0] == 503 and json.loads(ready[2])["ready"] is False
    assert metrics[1]["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(metrics[2].decode())}
    assert all(f.documentation for f in families.values())
    assert families["inventory_reader_requests"].type == "counter"
    requests = {s.labels["status"]: s.value for s in families["inventory_reader_requests"].samples}
    assert requests == {"503": 1.0, "401": 1.0}  # a response is counted once sent: /metrics's own is not yet
    assert families["inventory_reader_positions"].samples[0].value == 2
    assert families["inventory_reader_ready"].samples[0].value == 0
    assert families["inventory_reader_caught_up_age_seconds"].samples[0].value == -1


def test_metrics_answer_in_openmetrics_when_asked() -> None:
    (metrics,), _ = exchange(server(), get("/metrics", "Accept: application/openmetrics-text; version=1.0.0"))
    assert metrics[1]["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert metrics[2].endswith(b"# EOF\n")


def test_change_objects_are_immutable() -> None:
    c = change_of(changed("SKU1", "WH1", 1))
    assert isinstance(c, Change)
    try:
        c.version = 2  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("Change must be frozen")
