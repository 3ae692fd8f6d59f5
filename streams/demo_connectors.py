"""The demo through the real source and sink paths: ``python -m streams.demo --connectors``.

Starts what does not run yet (broker, schema registry, PostgreSQL, Kafka Connect), creates the
topics, starts a worker (left running) in registry mode with the OMS outbox topic and a webhook
token, applies ``connectors/*.json``, plays a small day through the webhooks and the OMS outbox,
waits until the ERP tables hold every position at the worker's version and the ledger sums to
them, and prints the inventory, the orders and the ERP rows. Running it again changes nothing
(same eventIds). Its own deployment beside the plain demo's (topics ``connectors-demo.``, worker
on ``web_port + 1``, files under ``.local/connectors-demo/``); ``stop`` and ``reset`` also cover
it. The picture, what ``reset`` keeps, and why apart: docs/connectors.md ("The connectors demo").
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr

from config.settings import REPO_ROOT, Settings, get_settings, url_with_port
from streams.demo_support import delete_topics, kill_worker, print_inventory, stop_worker, wait_until_settled
from streams.kafka_config import redacted_url
from streams.worker_process import WorkerProcess, http_json

PREFIX = "connectors-demo."
OUTBOX_AGGREGATE = "order"  # outbox rows' aggregatetype: Debezium routes them to <prefix>oms.outbox.order
SOURCE = "oms-outbox-source"
SINKS = ("erp-ledger-sink", "erp-positions-sink")
OMS_DB, ERP_DB = "oms", "erp"  # connectors/local_postgres.py's databases, named in the connector files
ERP_TIME_ZONE = "Asia/Shanghai"
STEP_TIMEOUT_S = 60.0

T = TypeVar("T")


class DemoError(RuntimeError):
    """A step of the demo did not happen (with what to look at)."""


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @classmethod
    def of(cls, settings: Settings) -> DemoPaths:
        return cls(Path(settings.local_dir).resolve() / "connectors-demo")

    @property
    def pidfile(self) -> Path:
        return self.root / "worker.pid"

    @property
    def log(self) -> Path:
        return self.root / "worker.log"

    @property
    def data(self) -> Path:
        return self.root / "worker"

    @property
    def token(self) -> Path:
        return self.root / "webhook.token"


def deployment(base: Settings, registry_url: str | None = None, token: SecretStr | None = None) -> Settings:
    """The connectors demo's settings: the base ones with its own topics, app, port and state."""
    prefix = f"{base.topic_prefix}{PREFIX}"
    return base.model_copy(
        update={
            "topic_prefix": prefix,
            "app_id": f"{base.app_id}-connectors-demo",
            "web_port": base.web_port + 1,
            "advertised_url": base.advertised_url and url_with_port(base.advertised_url, base.web_port + 1),
            "data_dir": DemoPaths.of(base).data,
            "outbox_topics": (f"{prefix}oms.outbox.{OUTBOX_AGGREGATE}",),
            "schema_registry_url": registry_url,
            "webhook_token": token,
        }
    )


def webhook_token(paths: DemoPaths) -> SecretStr:
    """The webhook's bearer token: generated on first use into a 0600 file, then kept."""
    if paths.token.is_file():
        os.chmod(paths.token, 0o600)
        text = paths.token.read_text().strip()
        if text:
            return SecretStr(text)
    paths.root.mkdir(parents=True, exist_ok=True)
    tmp = paths.token.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    tmp.replace(paths.token)
    return SecretStr(paths.token.read_text().strip())


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _until(what: str, probe: Callable[[], T | None], timeout_s: float = STEP_TIMEOUT_S) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"no {what} after {timeout_s:.0f}s")
        time.sleep(0.25)


# --- the day, as the source systems tell it ------------------------------------------------------

DAY = "2025-11-23"
CONSIGNEES = {
    "张三": ("13800138000", "北京市朝阳区XX街道XX号"),
    "李四": ("13900139000", "上海市浦东新区XX路XX号"),
    "王五": ("13700137000", "广州市天河区XX大道XX号"),
    "赵六": ("13600136000", "深圳市南山区XX路XX号"),
}


def _at(hour: int, minute: int) -> str:
    return f"{DAY}T{hour:02d}:{minute:02d}:00+08:00"


RECEIPTS: list[dict[str, Any]] = [  # WMS: the morning's receipts in two warehouses
    {
        "eventType": "GoodsReceived",
        "eventId": "cx-wms-rc-0001",
        "occurredAt": _at(8, 0),
        "receiptNo": "RC1001",
        "warehouseCode": "WH001",
        "lines": [{"sku": "SKU101", "sellableQty": 60}, {"sku": "SKU102", "sellableQty": 20}],
    },
    {
        "eventType": "GoodsReceived",
        "eventId": "cx-wms-rc-0002",
        "occurredAt": _at(8, 10),
        "receiptNo": "RC1002",
        "warehouseCode": "WH002",
        "lines": [{"sku": "SKU101", "sellableQty": 15}, {"sku": "SKU103", "sellableQty": 12}],
    },
]


def _order(n: int, minute: int, who: str, lines: dict[str, tuple[int, float]], speed: str) -> dict[str, Any]:
    """An outbox row's payload as the OMS writes it (the row's ``type`` says OrderCreated)."""
    phone, address = CONSIGNEES[who]
    return {
        "eventId": f"cx-oms-{n:04d}",
        "occurredAt": _at(9, minute),
        "orderNo": f"OMS2025112300{n:02d}",
        "orderType": "NORMAL",
        "consignee": {"name": who, "phone": phone, "address": address},
        "items": [{"sku": sku, "quantity": q, "price": price} for sku, (q, price) in lines.items()],
        "totalAmount": round(sum(q * price for q, price in lines.values()), 2),
        "timeRequirement": speed,
    }


ORDERS = [  # OMS
    _order(1, 0, "张三", {"SKU101": (2, 99.00)}, "STANDARD"),  # shipped, then delivered
    _order(2, 5, "李四", {"SKU102": (5, 25.50), "SKU103": (3, 10.00)}, "EXPRESS"),  # two warehouses, waits for the WMS
    _order(3, 10, "王五", {"SKU101": (4, 99.00)}, "STANDARD"),  # cancelled by the customer
    _order(4, 15, "赵六", {"SKU103": (30, 10.00)}, "URGENT"),  # more than the network holds: rejected
]
SHIPPED, DELIVERED, CANCELLED = ORDERS[0]["orderNo"], ORDERS[0]["orderNo"], ORDERS[2]["orderNo"]
CANCELLATION = {"eventId": "cx-oms-0005", "occurredAt": _at(9, 40), "orderNo": CANCELLED, "reason": "客户改变主意"}
SKUS = sorted({line["sku"] for r in RECEIPTS for line in r["lines"]})
ORDER_NOS = [o["orderNo"] for o in ORDERS]

OPEN = {"PENDING", "RESERVED"}  # still being decided
SHIPPED_OR_LATER = {
    "PARTIALLY_SHIPPED",
    "SHIPPED",
    "DELIVERED",
    "DELIVERY_FAILED",
    "RETURN_REQUESTED",
    "PARTIALLY_RETURNED",
    "RETURNED",
}
DELIVERED_OR_LATER = {"DELIVERED", "RETURN_REQUESTED", "PARTIALLY_RETURNED", "RETURNED"}


def shipment_of(order: dict[str, Any]) -> dict[str, Any]:
    """The WMS's OrderShipped for an order's reserved lines, from the warehouse that holds them."""
    lines = [line for line in order["lines"] if line["warehouseCode"]]
    warehouses = {line["warehouseCode"] for line in lines}
    if len(warehouses) != 1:
        raise DemoError(f"{order['orderNo']} is not reserved in one warehouse: {order['lines']}")
    return {
        "eventType": "OrderShipped",
        "eventId": "cx-wms-ship-0001",
        "occurredAt": _at(11, 0),
        "shipmentNo": "SH1001",
        "orderNo": order["orderNo"],
        "warehouseCode": warehouses.pop(),
        "lines": [{"sku": line["sku"], "quantity": line["quantity"]} for line in lines],
        "waybillNo": "SF3000001",
        "carrier": "SF",
    }


DELIVERY = {
    "eventType": "Delivered",
    "eventId": "cx-tms-0001",
    "occurredAt": _at(16, 30),
    "orderNo": DELIVERED,
    "shipmentNo": "SH1001",
    "waybillNo": "SF3000001",
    "signedBy": "张三",
}


# --- the stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    """The running demo: its settings, the worker's URL, and the ways in."""

    settings: Settings
    url: str
    token: SecretStr

    def post(self, source: str, events: list[dict[str, Any]]) -> None:
        """One webhook request, as the WMS or TMS sends it; 202 means written."""
        request = urllib.request.Request(
            f"{self.url}/webhooks/{source}",
            data=json.dumps(events, ensure_ascii=False).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token.get_secret_value()}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
                body = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            hint = (
                f" (the worker on {self.url} was started with another token: make stop, then run again)"
                if exc.code == 401
                else ""
            )
            raise DemoError(
                f"POST /webhooks/{source}: HTTP {exc.code} {exc.read()[:300].decode(errors='replace')}{hint}"
            ) from None
        written = ", ".join(f"{e['eventId']} -> {e['topic']}[{e['partition']}]@{e['offset']}" for e in body["events"])
        print(f"  POST /webhooks/{source}: 202, {body['accepted']} accepted ({written})", flush=True)

    def insert_outbox(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """OMS transactions' outbox rows: (type, payload). Each transaction inserts its row and
        deletes it again, the outbox pattern's way to keep the table empty: Debezium reads the
        insert from the WAL (docs/connectors.md)."""
        from connectors import local_postgres

        statements, shown = [], []
        for event_type, payload in rows:
            row_id = _text(str(uuid.uuid4()))
            statements.append(
                "BEGIN; INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES "
                f"({row_id}, {_text(OUTBOX_AGGREGATE)}, {_text(payload['orderNo'])}, "
                f"{_text(event_type)}, {_text(json.dumps(payload, ensure_ascii=False))}::jsonb); "
                f"DELETE FROM outbox WHERE id = {row_id}; COMMIT;"
            )
            shown.append(f"{event_type} {payload['orderNo']}")
        local_postgres.psql(self.settings, OMS_DB, "\n".join(statements))
        print(f"  INSERT INTO {OMS_DB}.outbox: {', '.join(shown)}", flush=True)

    def order(self, order_no: str) -> dict[str, Any] | None:
        status, body = http_json(f"{self.url}/orders/{order_no}")
        return body if status == 200 and isinstance(body, dict) else None

    def status_in(self, order_no: str, statuses: set[str]) -> dict[str, Any] | None:
        order = self.order(order_no)
        return order if order is not None and order.get("status") in statuses else None

    def positions(self) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for sku in SKUS:
            status, body = http_json(f"{self.url}/inventory/{sku}")
            for p in (body or {}).get("warehouses", []) if status == 200 else []:
                out[(sku, p["warehouseCode"])] = p
        return out


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _decided(stack: Stack, order_no: str) -> bool:
    """The order is seen and no longer open."""
    order = stack.order(order_no)
    if not order:
        return False
    return order["status"] not in OPEN


def play(stack: Stack) -> None:
    """The day, step by step; each step waits until the worker shows it (at once on a rerun)."""
    print("\n1. WMS: goods received in WH001 and WH002 (webhook)", flush=True)
    stack.post("wms", RECEIPTS)
    wanted = {(line["sku"], r["warehouseCode"]) for r in RECEIPTS for line in r["lines"]}
    _until("stock on the shelves", lambda: wanted <= stack.positions().keys())

    print("2. OMS: four orders (outbox rows -> Debezium -> outbox bridge)", flush=True)
    stack.insert_outbox(("OrderCreated", order) for order in ORDERS)
    for no in ORDER_NOS:
        _until(f"decision on {no}", partial(_decided, stack, no))

    print(f"3. WMS: {SHIPPED} leaves the warehouse (webhook)", flush=True)
    stack.post("wms", [shipment_of(_until(f"order {SHIPPED}", lambda: stack.order(SHIPPED)))])
    _until(f"{SHIPPED} shipped", lambda: stack.status_in(SHIPPED, SHIPPED_OR_LATER))

    print(f"4. TMS: {DELIVERED} signed for (webhook)", flush=True)
    stack.post("tms", [DELIVERY])
    _until(f"{DELIVERED} delivered", lambda: stack.status_in(DELIVERED, DELIVERED_OR_LATER))

    print(f"5. OMS: the customer cancels {CANCELLED} (outbox row)", flush=True)
    stack.insert_outbox([("OrderCancelled", CANCELLATION)])
    _until(f"{CANCELLED} cancelled", lambda: stack.status_in(CANCELLED, {"CANCELLED"}))


# --- the ERP side ---------------------------------------------------------------------------

LEDGER_BUCKETS = {
    "ON_HAND": "on_hand_qty",
    "IN_TRANSIT": "in_transit_qty",
    "OUTBOUND": "outbound_qty",
    "DAMAGED": "damaged_qty",
}


def erp_rows(settings: Settings, sql: str) -> list[dict[str, Any]]:
    from connectors import local_postgres

    # Timestamps in the source systems' zone (the seed's events are +08:00).
    out = local_postgres.psql(
        settings, ERP_DB, f"SET TIME ZONE {_text(ERP_TIME_ZONE)};\nSELECT row_to_json(t) FROM ({sql}) t"
    )
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _skus_sql() -> str:
    return ", ".join(_text(s) for s in SKUS)


def erp_in_step(settings: Settings, positions: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any] | None:
    """The ERP's rows once they have caught up with the worker: every position at the worker's
    version, and the ledger summing to each position's quantity in every bucket (the ledger is
    complete: docs/inventory-model.md). None until then."""
    rows = erp_rows(settings, f"SELECT * FROM inventory_positions WHERE sku IN ({_skus_sql()})")
    erp = {(r["sku"], r["warehouse_code"]): r for r in rows}
    if erp.keys() != positions.keys() or any(erp[k]["version"] != p["version"] for k, p in positions.items()):
        return None
    sums = erp_rows(
        settings,
        f"SELECT sku, warehouse_code, bucket, sum(quantity) AS qty FROM inventory_ledger "
        f"WHERE sku IN ({_skus_sql()}) GROUP BY 1, 2, 3",
    )
    total = {(s["sku"], s["warehouse_code"], s["bucket"]): s["qty"] for s in sums}
    for (sku, wh), row in erp.items():
        for bucket, column in LEDGER_BUCKETS.items():
            if total.get((sku, wh, bucket), 0) != row[column]:
                return None
    return {"positions": [erp[k] for k in sorted(erp)]}


def _sink_failures(settings: Settings) -> list[str]:
    from connectors import apply

    states = [apply.wait_for(apply.rest_url(settings), name, timeout_s=0) for name in (SOURCE, *SINKS)]
    return [line for state in states if state.failed for line in state.lines()]


def print_erp(settings: Settings, caught_up: dict[str, Any], latest: int = 10) -> None:
    print(f"\nERP tables ({ERP_DB} database, written by {' and '.join(SINKS)})")
    header = (
        f"{'sku':8} {'warehouse':9} {'available':>9} {'reserved':>8} {'inTransit':>9} {'onHand':>6} "
        f"{'outbound':>8} {'damaged':>7} {'version':>7}  cause"
    )
    print("inventory_positions")
    print(header)
    print("-" * len(header))
    for p in caught_up["positions"]:
        print(
            f"{p['sku']:8} {p['warehouse_code']:9} {p['available_qty']:>9} {p['reserved_qty']:>8} "
            f"{p['in_transit_qty']:>9} {p['on_hand_qty']:>6} {p['outbound_qty']:>8} {p['damaged_qty']:>7} "
            f"{p['version']:>7}  {p['cause_event_type']}"
        )
    count = erp_rows(settings, f"SELECT count(*) AS n FROM inventory_ledger WHERE sku IN ({_skus_sql()})")[0]["n"]
    entries = erp_rows(
        settings,
        f"SELECT occurred_at, sku, warehouse_code, bucket, movement_type, quantity, "
        f"document_type, document_no FROM inventory_ledger WHERE sku IN ({_skus_sql()}) "
        f"ORDER BY occurred_at DESC, entry_id DESC LIMIT {latest}",
    )
    which = "all of them" if len(entries) == count else f"the latest {len(entries)}"
    print(f"\ninventory_ledger: {count} entries, summing per (sku, warehouse, bucket) to the positions above; {which}:")
    for e in entries:
        print(
            f"{e['occurred_at'].replace('T', ' '):25} {e['sku']:8} {e['warehouse_code']:6} "
            f"{e['bucket']:9} {e['movement_type']:9} {e['quantity']:>+5}  {e['document_type']} {e['document_no']}"
        )
    sys.stdout.flush()


# --- the command ----------------------------------------------------------------------------


def _slot_exists(settings: Settings, slot: str) -> bool:
    from connectors import local_postgres

    found = local_postgres.psql(settings, OMS_DB, f"SELECT 1 FROM pg_replication_slots WHERE slot_name = {_text(slot)}")
    return bool(found.strip())


def _rest(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def forget_stale_source_offsets(settings: Settings, connect_url: str, doc: dict[str, Any]) -> None:
    """Debezium resumes from the WAL position it stored in Connect's offsets topic. When its
    replication slot is gone (PostgreSQL's data folder re-created, the slot dropped), that
    position is no longer on the server and the task fails at start ("no longer available on
    the server"). Without a slot the stored position is stale whatever it is, so forget it
    (KIP-875: the connector stopped, its offsets deleted, resumed): the source then creates its
    slot and, with ``snapshot.mode`` no_data, relays what is written from then on."""
    slot = doc["config"]["slot.name"]
    if _slot_exists(settings, slot):
        return
    name = urllib.parse.quote(doc["name"], safe="")
    base = f"{connect_url}/connectors/{name}"
    if _rest("GET", base)[0] == 200:
        code, answer = _rest("PUT", f"{base}/stop")
    else:  # create it stopped (KIP-980) so that it never starts from the stale position
        code, answer = _rest(
            "POST",
            f"{connect_url}/connectors",
            {"name": doc["name"], "config": doc["config"], "initial_state": "STOPPED"},
        )
    if code not in (200, 201, 202, 204):
        raise DemoError(f"{doc['name']}: could not stop it to reset its offsets (HTTP {code}): {answer}")
    _until(
        f"{doc['name']} STOPPED",
        lambda: (
            (s := _rest("GET", f"{base}/status")[1])
            and isinstance(s, dict)
            and s.get("connector", {}).get("state") == "STOPPED"
        ),
        timeout_s=30,
    )
    code, stored = _rest("GET", f"{base}/offsets")
    if code == 200 and isinstance(stored, dict) and stored.get("offsets"):
        code, answer = _rest("DELETE", f"{base}/offsets")
        if code != 200:
            raise DemoError(f"{doc['name']}: could not delete its offsets (HTTP {code}): {answer}")
        lsn = stored["offsets"][0].get("offset", {}).get("lsn")
        print(f"{doc['name']}: replication slot {slot} is gone; forgot the stored position (lsn {lsn})", flush=True)
    code, answer = _rest("PUT", f"{base}/resume")
    if code not in (200, 202, 204):
        raise DemoError(f"{doc['name']}: could not resume it (HTTP {code}): {answer}")


def start_worker(settings: Settings, paths: DemoPaths) -> str:
    url = settings.worker_url
    if http_json(f"{url}/health")[0] == 200:
        print(f"a worker already serves {url}", flush=True)
        return url
    assert settings.schema_registry_url is not None and settings.webhook_token is not None
    env = {
        "INVENTORY_TOPIC_PREFIX": settings.topic_prefix,
        "INVENTORY_APP_ID": settings.app_id,
        "INVENTORY_DATA_DIR": str(settings.data_dir),
        "INVENTORY_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "INVENTORY_OUTBOX_TOPICS": json.dumps(list(settings.outbox_topics)),
        "INVENTORY_WEBHOOK_TOKEN": settings.webhook_token.get_secret_value(),
        **({"INVENTORY_ADVERTISED_URL": settings.advertised_url} if settings.advertised_url else {}),
    }
    worker = WorkerProcess(env, paths.log, settings.web_port).start()
    assert worker.proc is not None
    paths.pidfile.write_text(str(worker.proc.pid))
    print(f"worker starting (pid {worker.proc.pid}, log {_shown(paths.log)})", flush=True)
    worker.wait_ready(timeout_s=120)
    return url


def apply_connectors(
    base: Settings, settings: Settings, postgres: Future[bool], registry_tried: threading.Event
) -> str:
    """Start Connect, apply connectors/*.json for this deployment, wait until each runs and the
    source's replication slot is active (Debezium relays what is written after that). Returns
    Connect's URL."""
    from connectors import apply, local_connect, local_postgres

    local_connect.start(base)
    postgres.result()
    registry_tried.wait(timeout=300)
    connect_url = apply.rest_url(base)
    files = sorted(apply.CONNECTORS_DIR.glob("*.json"))
    docs = [apply.render(apply.load(path), local_connect.variables_for(settings)) for path in files]
    source = next(d for d in docs if d["name"] == SOURCE)
    slot = source["config"]["slot.name"]
    forget_stale_source_offsets(base, connect_url, source)
    out = io.StringIO()  # printed in one piece: the worker's lines come from another thread
    states = apply.apply(connect_url, docs, timeout_s=90, out=out)
    # A sink that resumed on records before the registry answered has failed on them: once.
    for i, state in enumerate(states):
        if state.failed:
            name = urllib.parse.quote(state.name, safe="")
            _rest("POST", f"{connect_url}/connectors/{name}/restart?includeTasks=true&onlyFailed=true")
            states[i] = apply.wait_for(connect_url, state.name, timeout_s=90)
            print(f"restarted {state.name}:", *states[i].lines(), sep="\n", file=out)
    print(f"connectors ({', '.join(_shown(p) for p in files)}) on {connect_url}:\n{out.getvalue()}", end="", flush=True)
    if not all(s.running for s in states):
        raise DemoError(
            f"a connector is not RUNNING (above); Connect's log: {_shown(local_connect.ConnectPaths.of(base).log)}"
        )
    _until(
        f"active replication slot {slot}",
        lambda: (
            local_postgres.psql(
                base, OMS_DB, f"SELECT active FROM pg_replication_slots WHERE slot_name = {_text(slot)}"
            ).strip()
            == "t"
        ),
    )
    return connect_url


def main() -> int:
    try:
        return _main()
    except (RuntimeError, TimeoutError) as exc:  # ours, the local services', the worker's, apply's
        print(f"connectors demo: error: {exc}", file=sys.stderr, flush=True)
        return 1


def _main() -> int:
    from connectors import local_postgres, local_registry
    from streams import local_kafka
    from streams.topics import create_topics

    base = get_settings()
    began = time.monotonic()
    paths = DemoPaths.of(base)
    if base.uses_local_broker:
        local_kafka.start(base)
    registry_url = base.schema_registry_url or local_registry.registry_url(base)
    settings = deployment(base, registry_url, webhook_token(paths))
    created = create_topics(settings)
    print(f"topics ready ({len(created)} created, prefix {settings.topic_prefix})", flush=True)

    # PostgreSQL, then Connect and the connectors, while the registry starts and then the worker
    # (which registers its schemas first). The sinks need the registry only for records, which
    # come from the worker.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="demo-start") as pool:
        postgres = pool.submit(local_postgres.start, base)
        registry_tried = threading.Event()
        connectors = pool.submit(apply_connectors, base, settings, postgres, registry_tried)
        try:
            local_registry.start(base)
        finally:
            registry_tried.set()
        url = start_worker(settings, paths)
        print(
            f"worker ready at {url}: registry {redacted_url(registry_url)}, outbox topic {settings.outbox_topics[0]}, "
            f"webhook token in {_shown(paths.token)} (mode 0600)",
            flush=True,
        )
        connect_url = connectors.result()

    stack = Stack(settings, url, settings.webhook_token or SecretStr(""))
    play(stack)

    snapshot = wait_until_settled(url, SKUS, ORDER_NOS)
    print_inventory(snapshot)

    def caught_up() -> dict[str, Any] | None:
        if failures := _sink_failures(base):
            raise DemoError("a connector failed:\n" + "\n".join(failures))
        return erp_in_step(base, stack.positions())

    print_erp(base, _until("ERP tables in step with the worker", caught_up))

    token = _shown(paths.token)
    print(
        f"\ndone in {time.monotonic() - began:.1f}s. Left running: the worker {url} (log {_shown(paths.log)}), "
        f"the schema registry, PostgreSQL and Kafka Connect {connect_url}. Try:"
    )
    print(f"  curl {url}/orders/{ORDER_NOS[1]}")
    print(
        f"  curl -H \"Authorization: Bearer $(cat {token})\" -H 'Content-Type: application/json' "
        f'{url}/webhooks/wms -d \'{{"eventType": "GoodsReceived", "eventId": "my-rc-1", '
        f'"occurredAt": "{_at(18, 0)}", "receiptNo": "RC1999", "warehouseCode": "WH001", '
        f'"lines": [{{"sku": "SKU103", "sellableQty": 5}}]}}\''
    )
    socket = local_postgres.PostgresPaths.of(base).socket_dir
    print(f"  psql -h {socket} -p {local_postgres.port_of(base)} -U postgres {ERP_DB} -c 'TABLE inventory_positions'")
    print("stop everything with: make stop", flush=True)
    return 0


# --- stop and reset -------------------------------------------------------------------------


def stop(base: Settings) -> bool:
    """Stop this demo's worker, then Kafka Connect, PostgreSQL and the schema registry, each only
    if it runs (a pid file is there). True if one of them could not be stopped."""
    from connectors import local_connect, local_postgres, local_registry

    stop_worker(DemoPaths.of(base).pidfile)
    failed = False
    for pid_file, stop_service in (
        (local_connect.ConnectPaths.of(base).pid_file, local_connect.stop),
        (local_postgres.PostgresPaths.of(base).pid_file, local_postgres.stop),
        (local_registry.RegistryPaths.of(base).pid_file, local_registry.stop),
    ):
        if pid_file.exists():
            try:
                stop_service(base)
            except RuntimeError as exc:  # LocalConnectError, LocalPostgresError, LocalRegistryError
                print(f"{exc}", file=sys.stderr, flush=True)
                failed = True
    return failed


def reset(base: Settings) -> int:
    """Forget the connectors demo's data (the module docstring says what); nothing if it never ran."""
    from connectors import apply, local_connect

    paths = DemoPaths.of(base)
    if not paths.root.exists():
        return 0
    settings = deployment(base)
    kill_worker(paths.pidfile)
    done = []
    if local_connect.is_running(base):
        url = apply.rest_url(base)
        deleted = [name for name in (SOURCE, *SINKS) if apply.delete_connector(url, name)]
        done.append(f"{len(deleted)} connectors")
    from streams.topics import Topics

    doomed = delete_topics(settings, list(Topics(settings).all()))
    done.append(f"{len(doomed)} topics")
    done.append(f"{_delete_groups(base, [f'connect-{name}' for name in SINKS])} sink offsets")
    shutil.rmtree(paths.data, ignore_errors=True)
    done.append(f"worker state {_shown(paths.data)}")
    emptied = _empty_tables(base)
    if emptied:
        done.append(emptied)
    print(f"connectors demo: deleted {', '.join(done)}", flush=True)
    return 0


def _delete_groups(base: Settings, groups: list[str], timeout_s: float = 30.0) -> int:
    """Delete the consumer groups (retrying while a just-deleted sink still leaves its group)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from streams.kafka_config import admin_config

    admin = AdminClient(admin_config(base))
    deleted, pending = 0, list(groups)
    deadline = time.monotonic() + timeout_s
    while pending:
        retry = []
        for group, future in admin.delete_consumer_groups(pending, request_timeout=15).items():
            try:
                future.result()
                deleted += 1
            except KafkaException as exc:
                name = exc.args[0].name() if exc.args else ""
                if name == "NON_EMPTY_GROUP" and time.monotonic() < deadline:
                    retry.append(group)
                elif name == "NON_EMPTY_GROUP":
                    print(f"connectors demo: {group} still has members; its offsets are kept", flush=True)
                elif name != "GROUP_ID_NOT_FOUND":
                    raise
        pending = retry
        if pending:
            time.sleep(1.0)
    return deleted


def _empty_tables(base: Settings) -> str:
    """Empty the OMS outbox and the ERP tables; PostgreSQL is started for it if it is stopped."""
    from connectors import local_postgres

    if not (local_postgres.PostgresPaths.of(base).data / "PG_VERSION").is_file():
        return ""
    started = local_postgres.start(base) if not local_postgres.is_running(base) else False
    try:
        local_postgres.psql(base, OMS_DB, "TRUNCATE outbox")
        local_postgres.psql(base, ERP_DB, "TRUNCATE inventory_ledger, inventory_positions")
    finally:
        if started:
            local_postgres.stop(base)
    return f"the rows of {OMS_DB}.outbox, {ERP_DB}.inventory_ledger and {ERP_DB}.inventory_positions"
