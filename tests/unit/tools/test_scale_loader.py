"""The pure part of the scale benchmark's bulk loader (bench/scale.py): the partition it
writes each SKU record to, and the records themselves. The placement is also checked for
real, against a worker, by the benchmark itself before it measures anything."""

from __future__ import annotations

from collections import Counter

import pytest
from aiokafka.partitioner import DefaultPartitioner

from bench.scale import (
    MAX_ON_HAND,
    MIN_ON_HAND,
    Inventory,
    build_stock,
    check_against_core,
    order_workload,
    partition_for,
    sku_codes,
    stock_key,
    warehouse_codes,
)
from schemas.codec import decode, encode
from schemas.inputs import OrderCreated
from tables.state import SkuStock

KEYS = [b"SKU000000", b"SKU000001", b"SKU333333", b"A", b"sku-with-a-long-code/#1:2.x", "库存".encode()]


@pytest.mark.parametrize("partitions", [1, 3, 4, 12])
def test_partition_agrees_with_aiokafkas_default_partitioner(partitions: int) -> None:
    everyone = list(range(partitions))
    for k in KEYS:
        assert partition_for(k, partitions) == DefaultPartitioner()(k, everyone, everyone)


def test_skus_spread_over_every_partition() -> None:
    counts = Counter(partition_for(sku.encode(), 4) for sku in sku_codes(4000))
    assert set(counts) == {0, 1, 2, 3}
    assert min(counts.values()) > 800  # murmur2 spreads sequential codes evenly enough


def test_the_key_is_the_stock_tables_layout() -> None:
    assert stock_key("SKU000042") == b"s|SKU000042"


def test_a_built_record_round_trips_and_holds_the_laws() -> None:
    stock = build_stock("SKU000007", [("WH002", 2500), ("WH001", 9000), ("WH003", 2000)])
    decoded = decode(encode(stock), validate=False)
    assert isinstance(decoded, SkuStock)
    assert decoded == stock
    assert [p.warehouse_code for p in decoded.positions] == ["WH001", "WH002", "WH003"]
    assert decoded.reservation_seq == 0
    for p in decoded.positions:
        assert p.version == 1 and p.updated_at is not None
        assert p.reserved_qty == p.presold_qty == p.in_transit_qty == p.outbound_qty == p.damaged_qty == 0
        assert p.available_qty == p.on_hand_qty > 0  # nothing reserved: every unit available


def test_the_core_reserves_from_a_built_record() -> None:
    check_against_core(build_stock("SKU000001", [("WH001", 2000), ("WH002", 5000)]))


def test_the_core_check_refuses_a_record_it_cannot_reserve_from() -> None:
    with pytest.raises(ValueError, match="did not reserve"):
        check_against_core(build_stock("SKU000001", [("WH001", 0)]))


def test_the_inventory_is_deterministic_and_in_bounds() -> None:
    inventory = Inventory(sku_codes(50), warehouse_codes(3), seed=5)
    first, again = list(inventory.on_hand()), list(inventory.on_hand())
    assert first == again
    assert inventory.positions == 150
    assert all(
        wh == f"WH00{i + 1}" and MIN_ON_HAND <= q <= MAX_ON_HAND
        for _, on_hand in first
        for i, (wh, q) in enumerate(on_hand)
    )


def test_orders_are_zipf_popular_and_reproducible() -> None:
    skus = sku_codes(1000)
    orders = order_workload(3, 400, skus)
    assert orders == order_workload(3, 400, skus)
    assert all(isinstance(o, OrderCreated) and 1 <= len(o.items) <= 5 for o in orders)
    lines = Counter(item.sku for o in orders for item in o.items)
    assert lines.most_common(1)[0][0] == "SKU000000"
    assert set(lines) <= set(skus)
