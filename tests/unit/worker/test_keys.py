"""The state keys (streams/keys.py): the layout stored in every RocksDB table and changelog,
spelled out byte for byte (a change here is a change of the stored format), and every
parser the inverse of its encoder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from streams import keys
from tables.retention import DOCUMENT, RECEIPT

CODE = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/#-]{0,12}", fullmatch=True)
MESSAGE_ID = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=20)
MOMENT = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
HOUR = MOMENT.map(lambda t: t.replace(minute=0, second=0, microsecond=0))


def test_the_layout_byte_for_byte() -> None:
    due = datetime(2025, 11, 22, 9, 30, 5, 120, tzinfo=timezone(timedelta(hours=8)))
    assert keys.stock_key("SKU-1") == b"s|SKU-1"
    assert keys.reservation_key("SKU-1", "SO-9") == b"v|SKU-1|SO-9"
    assert keys.reservations_prefix("SKU-1") == b"v|SKU-1|"
    assert keys.expectation_key("SKU-1", "WH1", "ASN-3") == b"e|SKU-1|WH1|ASN-3"
    assert keys.order_key("SO-9") == b"o|SO-9"
    assert keys.receipt_key("ev-1|SKU-1|receive") == b"r|ev-1|SKU-1|receive"
    assert keys.expiry_key(due, "SO-9") == b"x|20251122T013005.000120|SO-9"  # UTC
    assert keys.index_key(due, (RECEIPT, "ev|1")) == b"t|20251122T01|r|ev|1"
    assert keys.index_key(due, (DOCUMENT, "S", "W", "D")) == b"t|20251122T01|e|S|W|D"
    assert keys.outbox_key(42) == b"q|00000000000000000042"
    assert keys.received_key("stock-state|3") == b"w|stock-state|3"
    assert (keys.HEAD, keys.CLOCK) == (b"h|", b"c|")
    assert {keys.kind(k) for k in (keys.stock_key("A"), keys.order_key("B"))} == {keys.STOCK, keys.ORDER}


@given(CODE, CODE, CODE)
def test_code_keys_parse_back(sku: str, warehouse: str, document: str) -> None:
    assert keys.parts(keys.stock_key(sku)) == (sku,)
    assert keys.parts(keys.reservation_key(sku, document)) == (sku, document)
    assert keys.parts(keys.expectation_key(sku, warehouse, document)) == (sku, warehouse, document)
    assert keys.parts(keys.order_key(document)) == (document,)
    assert keys.reservation_key(sku, document).startswith(keys.reservations_prefix(sku))


@given(MESSAGE_ID)
def test_a_message_id_or_a_source_parses_back_whole(message_id: str) -> None:
    assert keys.parts(keys.receipt_key(message_id)) == (message_id,)
    assert keys.parts(keys.received_key(message_id)) == (message_id,)
    assert keys.parts(keys.HEAD) == () == keys.parts(keys.CLOCK)


@given(MOMENT, CODE)
def test_expiry_keys_parse_back_and_sort_by_due_time(due: datetime, order_no: str) -> None:
    k = keys.expiry_key(due, order_no)
    at, parsed, stamp = keys.expiry_entry(k)
    assert (at, parsed, stamp) == (due, order_no, keys.expiry_stamp(due))
    assert k <= keys.expiry_bound(due) < keys.expiry_key(due + timedelta(microseconds=1), order_no)


@given(HOUR, MESSAGE_ID, st.tuples(CODE, CODE, CODE))
def test_index_keys_parse_back(hour: datetime, message_id: str, document: tuple[str, str, str]) -> None:
    assert keys.index_entry(keys.index_key(hour, (RECEIPT, message_id))) == (hour, (RECEIPT, message_id))
    assert keys.index_entry(keys.index_key(hour, (DOCUMENT, *document))) == (hour, (DOCUMENT, *document))


@given(st.integers(0, 10**20 - 1), st.integers(0, 10**20 - 1))
def test_outbox_keys_parse_back_in_sequence_order(a: int, b: int) -> None:
    assert keys.outbox_sequence(keys.outbox_key(a)) == a
    assert (keys.outbox_key(a) < keys.outbox_key(b)) == (a < b)
