"""State held as objects within a commit: a record staged by one message is read back by the
next without decoding and encoded once, at commit; committed records stay decoded in a
per-partition cache, dropped on a rebalance and on recovery."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import streams.stores as stores
from schemas.codec import decode, encode
from streams.keys import stock_key
from tables.policy import CorePolicy
from tables.state import Position, SkuStock
from tables.stock import StockOutcome
from tests.unit.rocks import stock_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    with stock_store(tmp_path) as s:
        yield s


def _outcome(n: int) -> StockOutcome:
    stock = SkuStock("A", (Position("WH1", on_hand_qty=100 - n, version=n),), reservation_seq=n)
    return StockOutcome(sku="A", stock=stock, reservations={}, expectations={}, receipt=None, events=())


class _Counting:
    def __init__(self, monkeypatch: Any) -> None:
        self.encoded: list[str] = []
        self.decoded = 0
        real_encode, real_decode = stores.encode, stores.decode

        def counting_encode(obj: Any, **kw: Any) -> bytes:
            self.encoded.append(type(obj).__name__)
            return real_encode(obj, **kw)

        def counting_decode(data: bytes, **kw: Any) -> Any:
            self.decoded += 1
            return real_decode(data, **kw)

        monkeypatch.setattr(stores, "encode", counting_encode)
        monkeypatch.setattr(stores, "decode", counting_decode)


def test_a_hot_record_is_encoded_once_per_commit_and_read_back_without_decoding(store: Any, monkeypatch: Any) -> None:
    store.open(0)
    store.stage_outcome(_outcome(0), ())
    store.commit()
    counting = _Counting(monkeypatch)
    for n in range(1, 51):  # fifty commands on one SKU in one transaction
        assert store.stock("A").reservation_seq == n - 1  # what the previous one staged
        store.stage_outcome(_outcome(n), ())
    store.commit()
    assert counting.encoded.count("SkuStock") == 1
    assert counting.decoded == 0
    assert decode(store.dbs[0][stock_key("A")], validate=False) == _outcome(50).stock


def test_committed_records_stay_decoded_until_a_rebalance_or_a_recovery(store: Any, monkeypatch: Any) -> None:
    store.open(1)
    store.stage_outcome(_outcome(1), ())
    store.commit()
    counting = _Counting(monkeypatch)
    assert store.stock("A") == _outcome(1).stock
    assert counting.decoded == 0  # from the cache
    # Written behind the store's back (as a restore from the changelog does): a cache kept
    # across a rebalance would hide it.
    store.dbs[1][stock_key("A")] = encode(_outcome(7).stock)
    assert store.stock("A") == _outcome(1).stock
    store.forget()  # on every assignment
    assert store.stock("A") == _outcome(7).stock and counting.decoded == 1
    store.dbs[1][stock_key("B")] = encode(SkuStock("B", reservation_seq=7))
    assert store.stock("B").reservation_seq == 7  # cached
    store.dbs[1][stock_key("B")] = encode(SkuStock("B", reservation_seq=8))
    store.recover()  # the first batch after an assignment (it applies the head again: A, not B)
    assert store.stock("B").reservation_seq == 8


def test_the_cache_is_bounded_per_partition(store: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(stores, "CACHE_ENTRIES", 10)
    store.open(0)
    for n in range(30):
        store.stage_outcome(
            StockOutcome(
                sku=f"S{n}", stock=SkuStock(f"S{n}"), reservations={}, expectations={}, receipt=None, events=()
            ),
            (),
        )
    store.commit()
    assert len(store._cache) == 10
    assert all(store.stock(f"S{n}") == SkuStock(f"S{n}") for n in range(30))


def test_a_message_over_its_budget_is_still_refused_with_objects(store: Any) -> None:
    from streams.stores import TooLarge

    store.message_budget = 500
    store.open(0)
    big = SkuStock("B", tuple(Position(f"WH{n:03d}", on_hand_qty=n) for n in range(40)))
    with pytest.raises(TooLarge):
        store.stage_outcome(
            StockOutcome(sku="B", stock=big, reservations={}, expectations={}, receipt=None, events=()), ()
        )
    assert store.stock("B") is None and store.staged_bytes == 0
    assert CorePolicy  # the policy module stays importable beside the store (no cycle)
