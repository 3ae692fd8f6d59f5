"""A position's recent on-hand movements, packed: ``(at, qty)`` pairs in time order.

Counts read late are netted against the movements that happened after them (see
``_reconcile`` in tables/stock.py). The history travels inside the SKU record, which is
encoded on every change, so it is kept as one ``bytes`` value - 12 bytes a movement:
little-endian int64 microseconds since the Unix epoch, then int32 units (signed) - rather
than as a list of records, which cost ~6 µs each to encode and decode.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

_ENTRY = struct.Struct("<qi")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

Movement = tuple[int, int]  # (microseconds since the epoch, units)


def micros(at: datetime) -> int:
    """Exact microseconds since the epoch (no float rounding)."""
    return (at - _EPOCH) // _MICRO


def at_micros(value: int) -> datetime:
    return _EPOCH + value * _MICRO


def unpack(data: bytes) -> list[Movement]:
    return list(_ENTRY.iter_unpack(data))


def pack(movements: list[Movement]) -> bytes:
    return b"".join(_ENTRY.pack(at, qty) for at, qty in movements)


def add(data: bytes, at: datetime, qty: int, limit: int) -> tuple[bytes, datetime | None]:
    """The history with one more movement (kept in time order), at most ``limit`` long;
    returns it and the time of the newest movement forgotten to stay within it (None: none)."""
    stamp = micros(at)
    entry = _ENTRY.pack(stamp, qty)
    size = _ENTRY.size
    if not data or _ENTRY.unpack_from(data, len(data) - size)[0] <= stamp:
        data = data + entry  # the usual case: movements read in time order
    else:
        movements = unpack(data)
        index = len(movements)
        while index > 0 and movements[index - 1][0] > stamp:
            index -= 1
        movements.insert(index, (stamp, qty))
        data = pack(movements)
    excess = len(data) // size - limit
    if excess <= 0:
        return data, None
    forgotten = _ENTRY.unpack_from(data, (excess - 1) * size)[0]
    return data[excess * size :], at_micros(forgotten)


def after(data: bytes, at: datetime) -> tuple[bytes, int]:
    """The movements that happened after ``at`` and the sum of their units."""
    stamp = micros(at)
    kept = [(t, q) for t, q in _ENTRY.iter_unpack(data) if t > stamp]
    return pack(kept), sum(q for _, q in kept)
