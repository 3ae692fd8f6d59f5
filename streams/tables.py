"""The Faust table declarations of the worker (state records in tables/state.py).

Every table holds Avro-encoded state records (see tables/state.py) under composite byte keys
joined with "|" (codes cannot contain it). Values and keys are raw bytes for Faust; the
codec in schemas/codec.py does the encoding, so changelog topics carry Avro like every other
topic. RocksDB memory is set deliberately: Faust's defaults are a 2 GiB block cache and
3 x 64 MiB memtables per table partition, i.e. gigabytes for 2 tables x N partitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import faust

from config.settings import Settings
from streams.topics import TABLES, Topics


def rocksdb_options(settings: Settings) -> dict[str, Any]:
    return {
        "driver": "rocksdict",
        "block_cache_size": settings.rocksdb_block_cache_bytes,
        "block_cache_compressed_size": 0,
        "write_buffer_size": settings.rocksdb_write_buffer_bytes,
        "max_write_buffer_number": settings.rocksdb_max_write_buffers,
        "max_open_files": 256,
    }


@dataclass(frozen=True)
class InventoryTables:
    orders: faust.Table  # the order partition family's records, keyed as streams/keys.py says
    stock: faust.Table  # the stock partition family's records


def declare_tables(app: faust.App, settings: Settings) -> InventoryTables:
    changelog_config = Topics(settings).changelog_config()  # Faust declares the changelogs too

    def table(name: str) -> faust.Table:
        return cast(  # app.Table is typed as returning TableT; it makes a faust.Table
            faust.Table,
            app.Table(
                name,
                default=None,
                partitions=settings.partitions,
                key_type=bytes,  # bytes -> Faust's "raw" serializer: the codec does the encoding
                value_type=bytes,
                options=rocksdb_options(settings),
                extra_topic_configs=changelog_config,
                help=f"{name} (source topic: {TABLES[name]})",
            ),
        )

    return InventoryTables(orders=table("order-state"), stock=table("stock-state"))
