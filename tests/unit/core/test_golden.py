"""Golden scenarios: input event logs and their expected outcome, as data (tests/golden/).

Each file is replayed through the whole core (``InventoryCenter``) and the final positions,
order statuses and emitted events are compared with what the file expects. On a mismatch
the assertion shows a unified diff of expected vs actual, section by section. The format is
described in tests/golden/README.md.
"""

from __future__ import annotations

import difflib
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from schemas.inputs import INPUT_EVENTS
from schemas.outputs import (
    InventoryAlert,
    InventoryLedgerEntry,
    OrderStatusChanged,
    OutboundInstruction,
)
from tables.center import InventoryCenter
from tables.policy import CorePolicy
from tables.state import Position

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
SCENARIOS = sorted(GOLDEN.glob("*.json"))
SECTIONS = ("positions", "orders", "statusChanges", "outboundInstructions", "alerts", "ledger")


def position_view(sku: str, p: Position) -> dict[str, Any]:
    return {
        "sku": sku,
        "warehouseCode": p.warehouse_code,
        "onHandQty": p.on_hand_qty,
        "reservedQty": p.reserved_qty,
        "availableQty": p.available_qty,
        "inTransitQty": p.in_transit_qty,
        "presoldQty": p.presold_qty,
        "outboundQty": p.outbound_qty,
        "damagedQty": p.damaged_qty,
        "deliveredQty": p.delivered_qty,
        "totalQty": p.total_qty,
    }


def output_id(event: object) -> str:
    for name in ("event_id", "entry_id", "alert_id"):
        value = getattr(event, name, None)
        if value is not None:
            return f"{type(event).__name__}:{value}"
    raise AssertionError(f"output without a deterministic id: {event!r}")


def unique_outputs(center: InventoryCenter) -> list[object]:
    """Outputs as a consumer keeps them: a replay re-emits earlier outputs under the same
    deterministic ids, which the consumer drops."""
    seen: set[str] = set()
    kept = []
    for event in center.outputs:
        key = output_id(event)
        if key not in seen:
            seen.add(key)
            kept.append(event)
    return kept


def actual_outcome(center: InventoryCenter) -> dict[str, Any]:
    tables = center.tables
    outputs = unique_outputs(center)
    status_changes: dict[str, list[str]] = defaultdict(list)
    ledger: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for e in outputs:
        if isinstance(e, OrderStatusChanged):
            status_changes[e.order_no].append(f"{e.status}: {e.reason}" if e.reason else str(e.status))
        elif isinstance(e, InventoryLedgerEntry):
            ledger[f"{e.sku}|{e.warehouse_code}"][str(e.bucket)][str(e.movement_type)] += e.quantity
    return {
        "positions": [
            position_view(sku, p) for sku in sorted(tables.stock_by_sku) for p in tables.stock_by_sku[sku].positions
        ],
        "orders": {no: str(o.status) for no, o in sorted(tables.orders_by_no.items())},
        "statusChanges": dict(status_changes),
        "outboundInstructions": [
            {
                "orderNo": e.order_no,
                "warehouseCode": e.warehouse_code,
                "lines": [{"sku": x.sku, "quantity": x.quantity} for x in e.lines],
            }
            for e in outputs
            if isinstance(e, OutboundInstruction)
        ],
        "alerts": [
            {
                "alertType": str(e.alert_type),
                "sku": e.sku,
                "warehouseCode": e.warehouse_code,
                "orderNo": e.order_no,
                "quantity": e.quantity,
                "ordersAtRisk": list(e.orders_at_risk),
            }
            for e in outputs
            if isinstance(e, InventoryAlert)
        ],
        "ledger": {
            key: {bucket: {m: q for m, q in sorted(by_m.items()) if q} for bucket, by_m in sorted(buckets.items())}
            for key, buckets in sorted(ledger.items())
        },
    }


IDENTITY = ("sku", "warehouseCode", "orderNo", "alertType")  # listed first, so a diff hunk shows whose


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (k not in IDENTITY, IDENTITY.index(k) if k in IDENTITY else 0, k))
        return {k: _canonical(value[k]) for k in keys}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _dump(value: Any) -> list[str]:
    return json.dumps(_canonical(value), indent=2, ensure_ascii=False).splitlines()


def diff(section: str, expected: Any, actual: Any) -> str:
    lines = difflib.unified_diff(
        _dump(expected), _dump(actual), f"expected {section}", f"actual {section}", lineterm="", n=8
    )
    return "\n".join(lines)


def replay(scenario: dict[str, Any]) -> InventoryCenter:
    policy = scenario.get("policy", {})
    center = InventoryCenter(
        CorePolicy(
            warehouse_priority=tuple(policy.get("warehousePriority", ())),
            reorder_point=policy.get("reorderPoint", CorePolicy().reorder_point),
        )
    )
    defaults: dict[str, dict[str, Any]] = scenario.get("defaults", {})
    for number, step in enumerate(scenario["steps"], 1):
        if "tick" in step:
            center.expire_due(datetime.fromisoformat(step["tick"]))
        elif "expectPosition" in step:
            want = step["expectPosition"]
            position = center.position(want["sku"], want["warehouseCode"])
            assert position is not None, f"step {number}: no position {want}"
            have = {k: v for k, v in position_view(want["sku"], position).items() if k in want}
            if have != want:
                pytest.fail(f"step {number}: position differs\n" + diff("position", want, have), pytrace=False)
        else:
            fields = {**defaults.get(step["eventType"], {}), **step}
            event_type = fields.pop("eventType")
            center.submit(INPUT_EVENTS[event_type].model_validate(fields))
    return center


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_golden_scenario(path: Path) -> None:
    scenario = json.loads(path.read_text(encoding="utf-8"))
    expected = scenario["expect"]
    assert sorted(expected) == sorted(SECTIONS), f"{path.name}: 'expect' must have exactly {SECTIONS}"
    actual = actual_outcome(replay(scenario))
    mismatches = [diff(s, expected[s], actual[s]) for s in SECTIONS if expected[s] != actual[s]]
    if mismatches:
        pytest.fail(f"{path.name} ({scenario['name']}):\n" + "\n".join(mismatches), pytrace=False)


def test_there_are_golden_scenarios() -> None:
    assert len(SCENARIOS) >= 12, SCENARIOS
