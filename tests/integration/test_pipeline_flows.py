"""The seed's flows end to end on a real broker and a real worker (RocksDB tables).

One worker serves the module; every test uses its own SKUs and orders. Events are published
in causal phases (wait until applied, then the next), as time separates them in real life:
the three input topics are not ordered with respect to each other.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from schemas.codec import encode
from schemas.inputs import OrderCreated
from streams.worker_process import WorkerProcess
from tests.integration.conftest import Deployment, wait_until

pytestmark = pytest.mark.kafka

_seq = itertools.count(1)
T = "2025-11-22T10:{:02d}:{:02d}+08:00"


def _at() -> str:
    n = next(_seq)
    return T.format(n // 60 % 60, n % 60)


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def receipt(wh: str, **skus: int) -> dict[str, Any]:
    return {
        "eventType": "GoodsReceived",
        "eventId": _id("rc"),
        "occurredAt": _at(),
        "receiptNo": _id("RC"),
        "warehouseCode": wh,
        "lines": [{"sku": s, "sellableQty": q} for s, q in skus.items()],
    }


def order(order_no: str, lines: dict[str, int], **extra: Any) -> dict[str, Any]:
    return {
        "eventType": "OrderCreated",
        "eventId": _id("oc"),
        "occurredAt": _at(),
        "orderNo": order_no,
        "orderType": "NORMAL",
        "consignee": {"name": "张三", "phone": "13800138000", "address": "北京市朝阳区"},
        "items": [{"sku": s, "quantity": q, "price": 9.9} for s, q in lines.items()],
        "totalAmount": round(9.9 * sum(lines.values()), 2),
        "timeRequirement": "STANDARD",
        **extra,
    }


def shipped(order_no: str, shipment_no: str, wh: str, lines: dict[str, int]) -> dict[str, Any]:
    return {
        "eventType": "OrderShipped",
        "eventId": _id("sh"),
        "occurredAt": _at(),
        "shipmentNo": shipment_no,
        "orderNo": order_no,
        "warehouseCode": wh,
        "lines": [{"sku": s, "quantity": q} for s, q in lines.items()],
        "waybillNo": _id("WB"),
        "carrier": "SF",
    }


def tracking(kind: str, order_no: str, shipment_no: str) -> dict[str, Any]:
    return {
        "eventType": kind,
        "eventId": _id("tms"),
        "occurredAt": _at(),
        "orderNo": order_no,
        "shipmentNo": shipment_no,
        "waybillNo": "WB1",
    }


@pytest.fixture(scope="module")
def worker(deployment: Deployment) -> WorkerProcess:
    return deployment.start_worker("flows")


def _sku() -> str:
    return _id("SKU")


def _qty(d: Deployment, w: WorkerProcess, sku: str, wh: str) -> dict[str, Any]:
    return wait_until(lambda: d.position(w, sku, wh), timeout_s=30)


def _position_is(d: Deployment, w: WorkerProcess, sku: str, wh: str, **expected: int) -> dict[str, Any]:
    """Wait until the position shows these quantities (stock commands trail order status)."""

    def probe() -> dict[str, Any] | None:
        p = d.position(w, sku, wh)
        return p if p and all(p[k] == v for k, v in expected.items()) else None

    try:
        return wait_until(probe, timeout_s=30)
    except AssertionError:
        raise AssertionError(f"{sku}@{wh}: wanted {expected}, have {d.position(w, sku, wh)}") from None


def _status(d: Deployment, w: WorkerProcess, order_no: str, status: str) -> dict[str, Any]:
    return wait_until(lambda: (o := d.order(w, order_no)) and o["status"] == status and o, timeout_s=30)


def test_forward_flow_order_reserved_outbound_shipped_delivered_deducted(
    deployment: Deployment, worker: WorkerProcess
) -> None:
    d, sku, no = deployment, _sku(), _id("OMS")
    d.publish([receipt("WH001", **{sku: 100})])
    wait_until(lambda: (p := d.position(worker, sku, "WH001")) and p["onHandQty"] == 100)

    d.publish([order(no, {sku: 2})])
    placed = _status(d, worker, no, "OUTBOUND_REQUESTED")
    assert [e["what"] for e in placed["timeline"]][:3] == ["PENDING", "RESERVED", "OUTBOUND_REQUESTED"]
    _position_is(d, worker, sku, "WH001", availableQty=98, reservedQty=2, totalQty=100)
    instructions = [r for r in d.read(d.topics.outbound_instructions) if r["orderNo"] == no]
    assert [(i["warehouseCode"], i["lines"]) for i in instructions] == [("WH001", [{"sku": sku, "quantity": 2}])]

    d.publish([shipped(no, f"SH-{no}", "WH001", {sku: 2})])
    _status(d, worker, no, "SHIPPED")
    _position_is(d, worker, sku, "WH001", onHandQty=98, reservedQty=0, outboundQty=2, availableQty=98)

    d.publish([tracking("PickedUp", no, f"SH-{no}"), tracking("Delivered", no, f"SH-{no}")])
    _status(d, worker, no, "DELIVERED")
    _position_is(d, worker, sku, "WH001", onHandQty=98, outboundQty=0, totalQty=98)
    ledger = [r for r in d.read(d.topics.inventory_ledger) if r["sku"] == sku]
    assert sum(r["quantity"] for r in ledger if r["bucket"] == "DELIVERED") == 2
    statuses = [r["status"] for r in d.read(d.topics.order_status) if r["orderNo"] == no]
    assert statuses == ["PENDING", "RESERVED", "OUTBOUND_REQUESTED", "SHIPPED", "DELIVERED"]


def test_reverse_flow_return_inspected_back_on_hand_and_damaged(deployment: Deployment, worker: WorkerProcess) -> None:
    d, sku, no = deployment, _sku(), _id("OMS")
    d.publish([receipt("WH001", **{sku: 10})])
    _qty(d, worker, sku, "WH001")
    d.publish([order(no, {sku: 3})])
    _status(d, worker, no, "OUTBOUND_REQUESTED")
    d.publish([shipped(no, f"SH-{no}", "WH001", {sku: 3})])
    _status(d, worker, no, "SHIPPED")
    d.publish([tracking("Delivered", no, f"SH-{no}")])
    _status(d, worker, no, "DELIVERED")

    rt = _id("RT")
    d.publish(
        [
            {
                "eventType": "ReturnRequested",
                "eventId": _id("rr"),
                "occurredAt": _at(),
                "orderNo": no,
                "returnNo": rt,
                "items": [{"sku": sku, "quantity": 2}],
            }
        ]
    )
    _status(d, worker, no, "RETURN_REQUESTED")
    d.publish(
        [
            {
                "eventType": "ReturnPickedUp",
                "eventId": _id("rp"),
                "occurredAt": _at(),
                "orderNo": no,
                "returnNo": rt,
                "waybillNo": "WBR1",
                "warehouseCode": "WH001",
            }
        ]
    )
    wait_until(lambda: (p := d.position(worker, sku, "WH001")) and p["inTransitQty"] == 2)
    d.publish(
        [
            {
                "eventType": "ReturnInspected",
                "eventId": _id("ri"),
                "occurredAt": _at(),
                "returnNo": rt,
                "orderNo": no,
                "warehouseCode": "WH001",
                "lines": [
                    {"sku": sku, "quantity": 1, "disposition": "SELLABLE"},
                    {"sku": sku, "quantity": 1, "disposition": "DAMAGED"},
                ],
            }
        ]
    )
    final = _status(d, worker, no, "PARTIALLY_RETURNED")
    assert final["lines"][0]["returnedQty"] == 2
    _position_is(d, worker, sku, "WH001", onHandQty=7 + 1, damagedQty=1, inTransitQty=0)


def test_multi_line_order_rejected_and_its_reserved_lines_released(
    deployment: Deployment, worker: WorkerProcess
) -> None:
    d, plenty, scarce, no = deployment, _sku(), _sku(), _id("OMS")
    d.publish([receipt("WH001", **{plenty: 50, scarce: 1})])
    wait_until(lambda: d.position(worker, scarce, "WH001"))
    d.publish([order(no, {plenty: 5, scarce: 3})])
    rejected = _status(d, worker, no, "REJECTED")
    assert {line["sku"]: line["reservationState"] for line in rejected["lines"]}[scarce] == "REJECTED"
    # reserved (v2) then released (v3): nothing stays reserved
    _position_is(d, worker, plenty, "WH001", availableQty=50, reservedQty=0, version=3)
    reasons = [r["reason"] for r in d.read(d.topics.order_status) if r["orderNo"] == no and r["status"] == "REJECTED"]
    assert reasons and scarce in reasons[0]


def test_transfer_between_warehouses(deployment: Deployment, worker: WorkerProcess) -> None:
    d, sku, trf = deployment, _sku(), _id("TRF")
    d.publish([receipt("WH001", **{sku: 20})])
    _qty(d, worker, sku, "WH001")
    d.publish(
        [
            {
                "eventType": "TransferDispatched",
                "eventId": _id("td"),
                "occurredAt": _at(),
                "transferNo": trf,
                "fromWarehouseCode": "WH001",
                "toWarehouseCode": "WH002",
                "lines": [{"sku": sku, "quantity": 8}],
            }
        ]
    )
    _position_is(d, worker, sku, "WH002", inTransitQty=8, onHandQty=0)
    _position_is(d, worker, sku, "WH001", onHandQty=12)
    d.publish(
        [
            {
                "eventType": "TransferReceived",
                "eventId": _id("tr"),
                "occurredAt": _at(),
                "transferNo": trf,
                "toWarehouseCode": "WH002",
                "lines": [{"sku": sku, "sellableQty": 8}],
            }
        ]
    )
    _position_is(d, worker, sku, "WH002", onHandQty=8, inTransitQty=0, totalQty=8)


def test_malformed_records_go_to_dead_letters_and_the_next_event_is_applied(
    deployment: Deployment, worker: WorkerProcess
) -> None:
    d, sku = deployment, _sku()
    no_garbage, no_invalid = _id("BAD"), _id("BAD")
    d.produce_raw(d.topics.orders, no_garbage.encode(), b"\x00\x01garbage that is not avro")
    invalid = OrderCreated.model_construct(
        **{
            **OrderCreated.model_validate(
                {k: v for k, v in order(no_invalid, {sku: 1}).items() if k != "eventType"}
            ).__dict__,
            "items": [],  # breaks the contract (min 1 line) but encodes as valid Avro
        }
    )
    d.produce_raw(d.topics.orders, no_invalid.encode(), encode(invalid))
    d.publish([receipt("WH001", **{sku: 4})])
    wait_until(lambda: (p := d.position(worker, sku, "WH001")) and p["onHandQty"] == 4)

    letters = wait_until(
        lambda: [
            r
            for r in d.read(d.topics.dead_letters)
            if r["sourceTopic"] == d.topics.orders and r["key"] and r["key"] in {_b64(no_garbage), _b64(no_invalid)}
        ],
        timeout_s=30,
    )
    by_type = {r["errorType"]: r for r in letters}
    assert set(by_type) == {"DECODE", "VALIDATION"}
    assert "items" in by_type["VALIDATION"]["error"]
    for letter in letters:
        assert letter["sourcePartition"] >= 0 and letter["sourceOffset"] >= 0 and letter["payload"]


def test_the_same_event_published_twice_is_applied_once(deployment: Deployment, worker: WorkerProcess) -> None:
    d, sku, no = deployment, _sku(), _id("OMS")
    rc = receipt("WH001", **{sku: 10})
    d.publish([rc, rc])
    wait_until(lambda: d.position(worker, sku, "WH001"))
    created = order(no, {sku: 4})
    d.publish([created])
    _status(d, worker, no, "OUTBOUND_REQUESTED")
    d.publish([created, rc])  # the same events again, later
    marker = _sku()
    d.publish([receipt("WH001", **{marker: 1})])  # once this is applied, the duplicates were too
    wait_until(lambda: d.position(worker, marker, "WH001"))
    p = _position_is(d, worker, sku, "WH001", reservedQty=4)
    assert (p["onHandQty"], p["reservedQty"], p["version"]) == (10, 4, 2)
    assert d.order(worker, no)["version"] == 3


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def test_views_answer_bad_input_with_json_errors_never_500(deployment: Deployment, worker: WorkerProcess) -> None:
    from streams.worker_process import http_json

    sku = _sku()
    deployment.publish([receipt("WH009", **{sku: 3})])
    _position_is(deployment, worker, sku, "WH009", onHandQty=3)
    cases = {
        f"/inventory/{sku}/WH009": 200,
        f"/inventory/{sku}/WH404": 404,
        "/inventory/NO-SUCH-SKU": 404,
        "/inventory/bad%20sku": 400,
        "/orders/NO-SUCH-ORDER": 404,
        "/orders/bad|order": 400,
        f"/inventory?skus={sku},NO-SUCH-SKU": 200,
        "/inventory?skus=": 400,
        "/inventory?skus=" + ",".join(f"S{i}" for i in range(201)): 400,
        "/no/such/route": 404,
    }
    for path, expected in cases.items():
        status, body = http_json(f"{worker.url}{path}")
        assert status == expected, (path, status, body)
        assert isinstance(body, dict), (path, body)
        if expected >= 400:
            assert body["status"] == expected and body["error"], (path, body)
    _, batch = http_json(f"{worker.url}/inventory?skus={sku},NO-SUCH-SKU")
    assert batch["missing"] == ["NO-SUCH-SKU"]
    assert batch["items"][sku]["network"]["onHandQty"] == 3
