"""How many table keys simulated days leave behind, with receipt retention and without.

Run: ``python bench/retention_keys.py [--days 30] [--orders 500]``. Consecutive simulated days
(``connectors.traffic``, a seed per day) on the same SKUs and warehouses are read by two
in-memory cores (``tables.center``): one with ``receipt_retention_days`` (default 7), one
that keeps every receipt (``None``, the behaviour before issue 12). After each day it prints
the keys each table would hold, by kind - what a compacted changelog keeps once compaction
has caught up (tombstones of the last ``delete.retention.ms`` come on top). Prints only.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.traffic import DEFAULT_DAY, DayParams, DaySimulation  # noqa: E402
from tables.center import InventoryCenter, MemoryTables  # noqa: E402
from tables.policy import CorePolicy  # noqa: E402
from tables.state import Receipt  # noqa: E402

KINDS = ("s| SKU", "v| reservation", "e| document", "o| order", "x| expiry", "r| receipt", "t| index", "c| clock")


def keys(tables: MemoryTables) -> Counter[str]:
    """The table keys of both families, by kind (one partition each: +1 redo record each)."""
    found: Counter[str] = Counter(
        {
            "s| SKU": len(tables.stock_by_sku),
            "v| reservation": len(tables.reservations_by_key),
            "e| document": len(tables.expectations_by_key),
            "o| order": len(tables.orders_by_no),
            "x| expiry": len(tables.expiry_index),
            "r| receipt": len(tables.receipts_by_id),
            "t| index": sum(len(refs) for index in tables.retention_index.values() for refs in index.values()),
            "c| clock": len(tables.clocks),
        }
    )
    return found


def forget_outputs(tables: MemoryTables) -> None:
    """Receipts keep what their message emitted; the count needs the keys only (a month of
    outputs would not fit in memory)."""
    receipts = tables.receipts_by_id
    for message_id, receipt in list(receipts.items()):
        if receipt.events:
            receipts[message_id] = Receipt(message_id, (), receipt.fingerprint, receipt.event_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--orders", type=int, default=500, help="orders a day")
    parser.add_argument("--skus", type=int, default=300)
    parser.add_argument("--retention-days", type=int, default=7)
    args = parser.parse_args()

    grace = timedelta(minutes=5)
    pruned = InventoryCenter(CorePolicy(receipt_retention_days=args.retention_days), tick_on_watermark=grace)
    kept = InventoryCenter(CorePolicy(receipt_retention_days=None), tick_on_watermark=grace)
    print(
        f"{args.orders} orders a day, {args.skus} SKUs x 3 warehouses; receipts kept {args.retention_days} days "
        "vs for ever; table keys after each day"
    )
    print(
        f"{'day':>4}{'events':>9}{'kept for ever':>15}{'of which r|':>13}{'pruned':>10}{'of which r|':>13}"
        f"{'t|':>9}   pruned, the rest by kind"
    )
    events_total = 0
    for day in range(args.days):
        params = DayParams(seed=day + 1, orders=args.orders, skus=args.skus, day=DEFAULT_DAY + timedelta(days=day))
        for event in DaySimulation(params).events():
            pruned.submit(event)
            kept.submit(event)
            events_total += 1
        for center in (pruned, kept):
            forget_outputs(center.tables)
            center.outputs.clear()
        with_retention, without = keys(pruned.tables), keys(kept.tables)
        rest = [kind for kind in KINDS if kind not in ("r| receipt", "t| index") and with_retention[kind]]
        by_kind = ", ".join(f"{kind.split()[0]}{with_retention[kind]:,}" for kind in rest)
        print(
            f"{day + 1:>4}{events_total:>9,}{sum(without.values()):>15,}{without['r| receipt']:>13,}"
            f"{sum(with_retention.values()):>10,}{with_retention['r| receipt']:>13,}{with_retention['t| index']:>9,}"
            f"   {by_kind}",
            flush=True,
        )


if __name__ == "__main__":
    main()
