"""The state stores' keys: what each prefix holds; every key is encoded and parsed here.
One table per family (streams/topics.py ``TABLES``; stock-state: s v e, order-state: o x, both:
r c h q w t), a two-byte prefix, parts joined with ``|``. Codes never contain ``|``
(``CODE_PATTERN``); a message id or a source may, so it comes last, whole. Times are UTC.

    s|<sku>                    SkuStock             r|<message id>      StoredReceipt
    v|<sku>|<orderNo>          Reservation          x|<due>|<orderNo>   b"1": the expiry index
    e|<sku>|<warehouse>|<doc>  InboundExpectation   t|<hour>|<ref>      b"1": the retention index
    o|<orderNo>                Order                c|                  PartitionClock
    h|                         Transaction: the redo record of the last transaction
    q|<seq, 20 digits>         Outbox: what transaction <seq> sends, until acknowledged
    w|<source>                 the highest envelope number applied from <source> (envelopes.py)
"""

from __future__ import annotations

from datetime import UTC, datetime

from tables.retention import RECEIPT as RECEIPT_REF
from tables.retention import IndexEntry, Ref

SEP = "|"
STOCK = b"s|"
RESERVATION = b"v|"
EXPECTATION = b"e|"
ORDER = b"o|"
EXPIRY = b"x|"
RECEIPT = b"r|"
INDEX = b"t|"
CLOCK = b"c|"
HEAD = b"h|"
OUTBOX = b"q|"
RECEIVED = b"w|"
_EXPIRY_FORMAT = "%Y%m%dT%H%M%S.%f"
_HOUR_FORMAT = "%Y%m%dT%H"


def kind(k: bytes) -> bytes:
    """A key's prefix (one of the constants above)."""
    return k[:2]


def _join(prefix: bytes, *parts: str) -> bytes:
    return prefix + SEP.join(parts).encode()


def stock_key(sku: str) -> bytes:
    return _join(STOCK, sku)


def reservation_key(sku: str, order_no: str) -> bytes:
    return _join(RESERVATION, sku, order_no)


def reservations_prefix(sku: str) -> bytes:
    """The prefix of every reservation of ``sku`` (a scan in key order: by orderNo)."""
    return _join(RESERVATION, sku, "")


def expectation_key(sku: str, warehouse_code: str, document_no: str) -> bytes:
    return _join(EXPECTATION, sku, warehouse_code, document_no)


def order_key(order_no: str) -> bytes:
    return _join(ORDER, order_no)


def receipt_key(message_id: str) -> bytes:
    return _join(RECEIPT, message_id)


def expiry_stamp(due_at: datetime) -> str:
    """A due time as the expiry index spells it (also in the tick's event id)."""
    return due_at.astimezone(UTC).strftime(_EXPIRY_FORMAT)


def expiry_key(due_at: datetime, order_no: str) -> bytes:
    return _join(EXPIRY, expiry_stamp(due_at), order_no)


def expiry_bound(due_by: datetime) -> bytes:
    """A key above every expiry key due at or before ``due_by``, below every later one."""
    return expiry_key(due_by, "\xff")


def index_key(hour: datetime, ref: Ref) -> bytes:
    """The retention index key of a record (``ref``: its kind and key parts) under ``hour``."""
    return _join(INDEX, hour.astimezone(UTC).strftime(_HOUR_FORMAT), *ref)


def outbox_key(seq: int) -> bytes:
    return OUTBOX + b"%020d" % seq


def received_key(source: str) -> bytes:
    return RECEIVED + source.encode()


# --- parsing -------------------------------------------------------------------------------


def parts(k: bytes) -> tuple[str, ...]:
    """The parts of a key after its prefix: those its encoder joined (a receipt's message id,
    an envelope source: one part, whole; an index key: see ``index_entry``)."""
    prefix, rest = k[:2], k[2:].decode()
    if prefix in (RECEIPT, RECEIVED):
        return (rest,)
    if prefix in (HEAD, CLOCK):
        return ()
    return tuple(rest.split(SEP))


def expiry_entry(k: bytes) -> tuple[datetime, str, str]:
    """(due time, orderNo, the due time's stamp) of an expiry index key."""
    stamp, order_no = k[2:].decode().split(SEP, 1)
    return datetime.strptime(stamp, _EXPIRY_FORMAT).replace(tzinfo=UTC), order_no, stamp


def index_entry(k: bytes) -> IndexEntry:
    """The (hour, ref) an index key stands for; a receipt's message id may contain ``|``."""
    stamp, ref_kind, rest = k[2:].decode().split(SEP, 2)
    hour = datetime.strptime(stamp, _HOUR_FORMAT).replace(tzinfo=UTC)
    return hour, ((ref_kind, rest) if ref_kind == RECEIPT_REF else (ref_kind, *rest.split(SEP)))


def outbox_sequence(k: bytes) -> int:
    return int(k[2:])
