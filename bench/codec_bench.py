"""Micro-benchmark of the wire codec: encode and decode µs/op for a few message types.

Run: ``python -m bench.codec_bench`` (or ``python bench/codec_bench.py``). It prints; it does
not assert - timings belong to the machine. The target for the hot path is encode + decode of
an InventoryChanged well under 20 µs.
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schemas.codec import Codec
from schemas.inputs import Consignee, OrderCreated, OrderItem, OrderType, TimeRequirement
from schemas.internal import ReserveStock
from schemas.outputs import InventoryChanged

NOW = datetime(2025, 11, 22, 10, 30, 0, 123456, tzinfo=timezone(timedelta(hours=8)))


def samples() -> dict[str, Any]:
    return {
        "InventoryChanged": InventoryChanged(
            sku="SKU001",
            warehouse_code="WH001",
            available_qty=100,
            reserved_qty=20,
            in_transit_qty=50,
            total_qty=170,
            event_id="SKU001:WH001:v42",
            on_hand_qty=120,
            presold_qty=0,
            outbound_qty=3,
            damaged_qty=1,
            version=42,
            cause_event_type="OrderCreated",
            cause_event_id="OMS-evt-0001",
            occurred_at=NOW,
        ),
        "ReserveStock": ReserveStock(
            command_id="OMS-evt-0001:SKU001:reserve",
            sku="SKU001",
            occurred_at=NOW,
            cause_event_type="OrderCreated",
            cause_event_id="OMS-evt-0001",
            order_no="OMS202511220001",
            order_type=OrderType.NORMAL,
            quantity=2,
            warehouse_code=None,
        ),
        "OrderCreated(5 lines)": OrderCreated(
            event_id="OMS-evt-0001",
            occurred_at=NOW,
            order_no="OMS202511220001",
            order_type=OrderType.NORMAL,
            consignee=Consignee(name="张三", phone="13800138000", address="北京市朝阳区XX街道XX号"),
            items=[OrderItem(sku=f"SKU00{i}", quantity=i, price=Decimal("99.00")) for i in range(1, 6)],
            total_amount=Decimal("1485.00"),
            time_requirement=TimeRequirement.STANDARD,
            reservation_expires_at=datetime(2025, 11, 22, 3, 0, tzinfo=UTC),
        ),
    }


def per_op_us(fn: Callable[[], object], min_seconds: float = 0.2) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(number, int(number * min_seconds / 0.2))
    best = min(timer.repeat(repeat=5, number=number))
    return best / number * 1e6


def main() -> None:
    codec = Codec()
    print(f"{'message':<24}{'bytes':>7}{'encode':>10}{'decode':>10}{'decode(trusted)':>17}   µs/op")
    for name, obj in samples().items():
        data = codec.encode(obj)
        assert codec.decode(data) == obj and codec.decode(data, validate=False) == obj
        enc = per_op_us(lambda obj=obj: codec.encode(obj))
        dec = per_op_us(lambda data=data: codec.decode(data))
        trusted = per_op_us(lambda data=data: codec.decode(data, validate=False))
        print(f"{name:<24}{len(data):>7}{enc:>10.2f}{dec:>10.2f}{trusted:>17.2f}")


if __name__ == "__main__":
    main()
