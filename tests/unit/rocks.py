"""A worker's store over real RocksDB databases (rocksdict), without Faust or Kafka: what
the store tests share. ``stock_store(tmp_path)`` yields a ``StockStore`` whose table hands
out one database per partition (``store.dbs``) and whose changelog is a list of
(partition, key, value) (``store.changelog``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rocksdict import Options, Rdict

from streams.stores import StockStore


class Changelog(list):  # type: ignore[type-arg]
    def __call__(self, partition: int, k: bytes, value: bytes | None) -> None:
        self.append((partition, k, value))


@contextmanager
def stock_store(tmp_path: Path, name: str = "stock") -> Iterator[Any]:
    dbs: dict[int, Rdict] = {}

    def db_for_partition(partition: int) -> Rdict:
        if partition not in dbs:
            dbs[partition] = Rdict(str(tmp_path / f"p{partition}"), Options(raw_mode=True))
        return dbs[partition]

    table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=db_for_partition))
    changelog = Changelog()
    store: Any = StockStore(table, changelog, name=name)
    store.changelog, store.dbs = changelog, dbs
    try:
        yield store
    finally:
        for db in dbs.values():
            db.close()
