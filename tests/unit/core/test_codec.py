"""The wire codec: every record class round-trips through Avro without loss, and bad bytes
fail with the codec's own typed errors, never with whatever fastavro happened to raise."""

from __future__ import annotations

import dataclasses
import io
import json
import operator
import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from schemas.avro_gen import all_classes
from schemas.avro_model import (
    REQUIRED,
    avro_schema,
    decimal_shape,
    is_record_class,
    is_timestamp,
    optional_inner,
    record_fields,
    sequence_item,
    unwrap,
)
from schemas.base import CODE_PATTERN
from schemas.codec import (
    Codec,
    ConfluentFraming,
    RecordRegistry,
    SingleObjectFraming,
    UnknownSchemaError,
    UnregisteredTypeError,
    WireDecodeError,
    WireEncodeError,
    decode,
    default_registry,
    encode,
    fingerprint64,
)
from schemas.inputs import (
    Consignee,
    OrderCreated,
    OrderItem,
    OrderType,
    StockLine,
    TimeRequirement,
    TransferDispatched,
)
from schemas.outputs import InventoryChanged, InventoryLevel

ALL_CLASSES = list(all_classes().values())  # the messages and the state records

# --- a strategy builder driven by the models' own types and constraints -----------------

CODE_FIRST = string.ascii_letters + string.digits
CODE_REST = CODE_FIRST + "._:/#-"
CHINESE = "张三李四王五北京市朝阳区街道号库存中心订单仓库"
TEXT = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(CHINESE), max_size=40)
TIMEZONES = [
    UTC,
    timezone(timedelta(hours=8)),  # China
    timezone(timedelta(hours=-3, minutes=-30)),
    timezone(timedelta(hours=5, minutes=45)),
    timezone(timedelta(hours=14)),
    timezone(timedelta(hours=-12)),
]
# Fixed offsets only: an aware datetime inside a DST fold of a ZoneInfo zone never compares
# equal to any datetime in another zone (PEP 495), so == cannot judge such a round trip.
DATETIMES = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(TIMEZONES),
)
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
LIST_CAP = 4  # lists are bounded at 200+ lines; a dedicated test covers the maximum


def _bounds(metadata: tuple[Any, ...]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        for key in ("min_length", "max_length", "pattern", "gt", "ge", "lt", "le"):
            value = getattr(item, key, None)
            if value is not None:
                found[key] = value
    return found


def _codes(lo: int, hi: int) -> st.SearchStrategy[str]:
    first = st.sampled_from(CODE_FIRST)
    typical = st.tuples(first, st.text(CODE_REST, max_size=min(hi - 1, 12))).map("".join)
    longest = st.tuples(first, st.text(CODE_REST, min_size=hi - 1, max_size=hi - 1)).map("".join)
    return typical | longest


def _text(lo: int, hi: int | None, pattern: str | None) -> st.SearchStrategy[str]:
    if pattern == CODE_PATTERN:
        return _codes(lo, hi or 64)
    if pattern is not None:
        return st.from_regex(pattern, fullmatch=True).filter(lambda s: lo <= len(s) <= (hi or len(s)))
    typical = st.text(
        alphabet=st.characters(codec="utf-8") | st.sampled_from(CHINESE),
        min_size=lo,
        max_size=min(hi or 40, 40),
    )
    if hi is None:
        return typical
    return typical | st.sampled_from(CHINESE + "a").map(lambda c: c * hi)  # at the limit


def strategy_for(annotation: Any, metadata: tuple[Any, ...] = ()) -> st.SearchStrategy[Any]:
    """Values that the model accepts, as the input a producer would send (nested dicts for
    pydantic records, instances for dataclasses)."""
    bare, more = unwrap(annotation)
    metadata = (*metadata, *more)
    inner = optional_inner(bare)
    if inner is not None:
        return st.none() | strategy_for(inner, metadata)
    bounds = _bounds(metadata)
    if bare is bool:
        return st.booleans()
    if bare is int:
        lo = bounds.get("ge", bounds["gt"] + 1 if "gt" in bounds else LONG_MIN)
        hi = bounds.get("le", bounds["lt"] - 1 if "lt" in bounds else LONG_MAX)
        return st.integers(lo, hi)
    if bare is str:
        return _text(bounds.get("min_length", 0), bounds.get("max_length"), bounds.get("pattern"))
    if bare is bytes:
        return st.binary(max_size=64)
    if bare is Decimal:
        precision, scale = decimal_shape(metadata)
        top = Decimal(10) ** (precision - scale) - Decimal(1).scaleb(-scale)
        return st.decimals(
            min_value=bounds.get("ge", -top), max_value=top, places=scale, allow_nan=False
        ) | st.sampled_from([Decimal(0), Decimal(99), Decimal("99.5"), top])
    if is_timestamp(bare):
        return DATETIMES
    if isinstance(bare, type) and issubclass(bare, Enum):
        return st.sampled_from(list(bare))
    if is_record_class(bare):
        return records(bare)
    seq = sequence_item(bare)
    if seq is not None:
        item_type, container = seq
        item_bare, _ = unwrap(item_type)
        unique_by = None
        if is_record_class(item_bare) and any(f.attr == "sku" for f in record_fields(item_bare)):
            # the contracts allow one line per SKU in a document
            if issubclass(item_bare, BaseModel):
                unique_by = operator.itemgetter("sku")
            else:
                unique_by = operator.attrgetter("sku")
        lo = bounds.get("min_length", 0)
        hi = min(bounds.get("max_length", LIST_CAP), max(lo, LIST_CAP))
        lists = st.lists(strategy_for(item_type), min_size=lo, max_size=hi, unique_by=unique_by)
        return lists.map(tuple) if container is tuple else lists
    raise TypeError(f"no strategy for {annotation!r}")


def records(cls: type) -> st.SearchStrategy[Any]:
    specs = record_fields(cls)
    if issubclass(cls, BaseModel):
        required = {s.wire_name: strategy_for(s.annotation, s.metadata) for s in specs if s.default is REQUIRED}
        optional = {s.wire_name: strategy_for(s.annotation, s.metadata) for s in specs if s.default is not REQUIRED}
        return st.fixed_dictionaries(required, optional=optional)
    return st.builds(cls, **{s.attr: strategy_for(s.annotation, s.metadata) for s in specs})


def instances(cls: type) -> st.SearchStrategy[Any]:
    """Valid instances of ``cls`` (cross-field rules filter out the few invalid draws)."""
    if not issubclass(cls, BaseModel):
        return records(cls)

    def build(data: dict[str, Any]) -> Any:
        try:
            return cls.model_validate(data)
        except ValidationError:
            return None

    return records(cls).map(build).filter(lambda obj: obj is not None)


def assert_identical(original: Any, decoded: Any, path: str = "$") -> None:
    """Equal AND of the same types all the way down: a StrEnum member equals its str value,
    so == alone would not notice an enum coming back as a plain string."""
    assert type(decoded) is type(original), f"{path}: {type(decoded)!r} != {type(original)!r}"
    if isinstance(original, BaseModel):
        for name in type(original).model_fields:
            assert_identical(getattr(original, name), getattr(decoded, name), f"{path}.{name}")
    elif dataclasses.is_dataclass(original):
        for f in dataclasses.fields(original):
            assert_identical(getattr(original, f.name), getattr(decoded, f.name), f"{path}.{f.name}")
    elif isinstance(original, list | tuple):
        assert len(decoded) == len(original), path
        for i, (a, b) in enumerate(zip(original, decoded, strict=True)):
            assert_identical(a, b, f"{path}[{i}]")
    elif isinstance(original, datetime):
        assert decoded == original, path
        assert decoded.tzinfo is not None, f"{path}: decoded naive"
    else:
        assert decoded == original, f"{path}: {decoded!r} != {original!r}"


# --- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_record_class_round_trips_without_loss(cls: type, data: st.DataObject) -> None:
    obj = data.draw(instances(cls), label=cls.__name__)
    wire = encode(obj)
    assert wire[:2] == b"\xc3\x01"
    for validate in (True, False):
        decoded = decode(wire, validate=validate)
        assert decoded == obj
        assert_identical(obj, decoded)


@pytest.mark.parametrize("cls", [c for c in ALL_CLASSES if issubclass(c, BaseModel)], ids=lambda c: c.__name__)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_trusted_decode_builds_what_model_construct_builds(cls: type, data: st.DataObject) -> None:
    obj = data.draw(instances(cls))
    decoded = decode(encode(obj), validate=False)
    reference = cls.model_construct(**decoded.__dict__)
    assert decoded.__dict__ == reference.__dict__
    assert decoded.model_fields_set == reference.model_fields_set
    assert decoded.__pydantic_extra__ == reference.__pydantic_extra__
    assert decoded.__pydantic_private__ == reference.__pydantic_private__


def order(**overrides: Any) -> OrderCreated:
    fields: dict[str, Any] = {
        "event_id": "OMS-evt-0001",
        "occurred_at": datetime(2025, 11, 22, 10, 30, 0, 123456, tzinfo=timezone(timedelta(hours=8))),
        "order_no": "OMS202511220001",
        "order_type": OrderType.NORMAL,
        "consignee": Consignee(name="张三", phone="13800138000", address="北京市朝阳区XX街道XX号"),
        "items": [OrderItem(sku="SKU001", quantity=2, price=Decimal("99.00"))],
        "total_amount": Decimal("198.00"),
        "time_requirement": TimeRequirement.STANDARD,
    }
    fields.update(overrides)
    return OrderCreated(**fields)


@pytest.mark.parametrize(
    "obj",
    [
        order(),
        order(
            consignee=Consignee(name="长" * 128, phone="+86 (10) 1234-5678", address="址" * 512),
            warehouse_code="WH-BJ-01",
            reservation_expires_at=datetime(2025, 11, 22, 11, 0, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
        ),
        order(
            items=[
                OrderItem(
                    sku="S" * 64,
                    quantity=1_000_000,
                    price=Decimal("999999999999.99"),
                    warehouse_code="W" * 32,
                )
            ],
            total_amount=Decimal("0.01"),
        ),
        order(items=[OrderItem(sku=f"SKU{i:04}", quantity=1, price=Decimal("0.10")) for i in range(200)]),
        order(occurred_at=datetime(2025, 3, 30, 1, 59, 59, 999999, tzinfo=ZoneInfo("Asia/Shanghai"))),
    ],
    ids=["seed-like", "max-lengths-optionals-set", "max-money", "200-lines", "zoneinfo"],
)
def test_edge_cases_round_trip(obj: OrderCreated) -> None:
    for validate in (True, False):
        decoded = decode(encode(obj), validate=validate)
        assert_identical(obj, decoded)
    # Avro keeps the instant (UTC, microseconds), not the offset it was written with:
    assert decode(encode(obj)).occurred_at.utcoffset() == timedelta(0)


def test_money_keeps_two_places_and_value() -> None:
    decoded = decode(encode(order(total_amount=Decimal(198))))
    assert decoded.total_amount == Decimal(198)
    assert decoded.total_amount.as_tuple().exponent == -2  # scale 2 on the wire


def test_instant_survives_a_dst_fold_although_equality_does_not() -> None:
    # 01:30 happens twice in New York on 2025-11-02. Python never calls such a time equal to
    # one in another zone (PEP 495), so compare instants: the codec keeps the instant.
    folded = datetime(2025, 11, 2, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York"))
    decoded = decode(encode(order(occurred_at=folded))).occurred_at
    assert decoded.timestamp() == folded.timestamp()
    assert decoded == folded.astimezone(UTC)


SEED_ORDER_JSON = """
{
  "eventId": "OMS-evt-0001",
  "occurredAt": "2025-11-22T10:30:00+08:00",
  "orderNo": "OMS202511220001",
  "orderType": "NORMAL",
  "consignee": {
    "name": "张三",
    "phone": "13800138000",
    "address": "北京市朝阳区XX街道XX号"
  },
  "items": [
    {
      "sku": "SKU001",
      "quantity": 2,
      "price": 99.00
    }
  ],
  "totalAmount": 198.00,
  "timeRequirement": "STANDARD"
}
"""
"""Seed supply-chain-integration.md section 6.1 (订单数据标准), with the ``NORMAL/PRESALE/GIFT``
and ``STANDARD/EXPRESS/URGENT`` placeholders resolved, in the eventId/occurredAt envelope."""

SEED_INVENTORY_JSON = """
{
  "sku": "SKU001",
  "warehouseCode": "WH001",
  "availableQty": 100,
  "reservedQty": 20,
  "inTransitQty": 50,
  "totalQty": 170
}
"""
"""Seed section 6.2 (库存数据标准), verbatim."""


def test_seed_order_is_an_order_created_and_round_trips() -> None:
    created = OrderCreated.model_validate_json(SEED_ORDER_JSON)
    assert created.items[0].price == Decimal("99.00")
    assert created.consignee.name == "张三"
    for validate in (True, False):
        assert_identical(created, decode(encode(created), validate=validate))


def test_seed_inventory_is_an_inventory_level_and_round_trips() -> None:
    level = InventoryLevel.model_validate_json(SEED_INVENTORY_JSON)
    assert (level.available_qty, level.reserved_qty, level.in_transit_qty, level.total_qty) == (
        100,
        20,
        50,
        170,
    )
    # InventoryLevel is a value inside InventoryChanged, not a message: its own registry.
    codec = Codec(registry=RecordRegistry([InventoryLevel]))
    assert_identical(level, codec.decode(codec.encode(level)))


# --- framing, fingerprints -------------------------------------------------------------------


def _rabin_spec(data: bytes) -> int:
    """CRC-64-AVRO exactly as the Avro specification writes it (independent of fastavro)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_fingerprint_matches_the_spec_and_reference_vectors() -> None:
    # Java's SchemaNormalization.parsingFingerprint64("null") == 7195948357588979594, and
    # avro's own test vector for "int" is little-endian 8f5c393f1ad57572.
    assert fingerprint64('"null"') == (7195948357588979594).to_bytes(8, "little")
    assert fingerprint64('"int"').hex() == "8f5c393f1ad57572"
    for record in default_registry().record_types:
        expected = _rabin_spec(record.canonical_form.encode()).to_bytes(8, "little")
        assert record.fingerprint == expected, record.cls.__name__


def test_canonical_form_drops_logical_types_as_the_spec_says() -> None:
    # [PRIMITIVES]: {"type":"long","logicalType":...} -> "long". The avro package (1.12.2)
    # keeps {"type":"long"} instead, which gives a different fingerprint from Java and
    # fastavro for every schema with a timestamp or decimal: never fingerprint with it.
    canonical = default_registry().record_type(InventoryChanged).canonical_form
    assert '{"name":"occurredAt","type":"long"}' in canonical
    assert "logicalType" not in canonical and "doc" not in canonical


def test_single_object_header_layout() -> None:
    obj = order()
    wire = encode(obj)
    record = default_registry().record_type(OrderCreated)
    assert wire[:2] == b"\xc3\x01"
    assert wire[2:10] == record.fingerprint
    body = io.BytesIO()
    schemaless_writer(body, record.parsed, record.to_wire(obj))
    assert wire[10:] == body.getvalue()


def test_module_helpers_and_codec_agree() -> None:
    obj = order()
    assert Codec(SingleObjectFraming()).encode(obj) == encode(obj)


# --- typed errors -------------------------------------------------------------------------------


def _raises(exc_type: type[Exception], data: bytes, match: str) -> None:
    with pytest.raises(Exception) as caught:
        decode(data)
    assert type(caught.value) is exc_type, repr(caught.value)
    assert match in str(caught.value)


def test_wrong_magic() -> None:
    wire = encode(order())
    _raises(WireDecodeError, b"\x00\x01" + wire[2:], "bad magic")
    _raises(WireDecodeError, b'{"orderNo": "OMS202511220001"}', "bad magic")


def test_unknown_fingerprint() -> None:
    wire = encode(order())
    _raises(UnknownSchemaError, wire[:2] + b"\x00" * 8 + wire[10:], "unknown writer schema")


def test_truncated_header_and_body() -> None:
    wire = encode(order())
    _raises(WireDecodeError, wire[:6], "truncated")
    _raises(WireDecodeError, b"", "truncated")
    for cut in (11, len(wire) // 2, len(wire) - 1):
        _raises(WireDecodeError, wire[:cut], "unreadable Avro body")


def test_garbage_body_and_trailing_bytes() -> None:
    wire = encode(order())
    _raises(WireDecodeError, wire[:10] + b"\xff" * 40, "unreadable Avro body")
    _raises(WireDecodeError, wire + b"\x00", "trailing bytes")


def test_not_bytes() -> None:
    with pytest.raises(WireDecodeError, match="expected bytes"):
        decode("c301")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    cls=st.sampled_from(ALL_CLASSES),
    body=st.binary(max_size=64),
    validate=st.booleans(),
)
def test_random_bodies_only_ever_raise_typed_errors(cls: type, body: bytes, validate: bool) -> None:
    header = b"\xc3\x01" + default_registry().record_type(cls).fingerprint
    try:
        decode(header + body, validate=validate)
    except (WireDecodeError, ValidationError):
        pass


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_corrupted_messages_only_ever_raise_typed_errors(data: st.DataObject) -> None:
    wire = bytearray(encode(data.draw(instances(OrderCreated))))
    for _ in range(data.draw(st.integers(1, 3))):
        wire[data.draw(st.integers(0, len(wire) - 1))] = data.draw(st.integers(0, 255))
    try:
        decode(bytes(wire), validate=data.draw(st.booleans()))
    except (WireDecodeError, ValidationError):  # UnknownSchemaError is a WireDecodeError
        pass


def test_bytes_that_are_avro_but_break_the_contract_are_a_validation_error() -> None:
    bad = OrderCreated.model_construct(**{**order().__dict__, "order_no": "has space"})
    wire = encode(bad)  # the writer does not validate: trusted producers only
    with pytest.raises(ValidationError) as caught:
        decode(wire)
    assert caught.value.errors()[0]["loc"] == ("orderNo",)
    assert decode(wire, validate=False).order_no == "has space"


def test_encode_errors_are_typed() -> None:
    too_big = InventoryChanged.model_construct(**{**_inventory_changed().__dict__, "version": 2**63})
    with pytest.raises(WireEncodeError):
        encode(too_big)  # Avro long is 64-bit; Python int is not
    lone_surrogate = OrderCreated.model_construct(**{**order().__dict__, "order_no": "\ud800"})
    with pytest.raises(WireEncodeError):
        encode(lone_surrogate)  # str may hold what UTF-8 cannot
    with pytest.raises(UnregisteredTypeError):
        encode(StockLine(sku="SKU001", quantity=1))  # a value object, not a message


def test_datetime_whose_instant_is_before_year_1_fails_typed() -> None:
    early = order(occurred_at=datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))))
    with pytest.raises(WireDecodeError):
        decode(encode(early))  # written fine, but year 0 UTC is not a Python datetime


def _inventory_changed() -> InventoryChanged:
    return InventoryChanged(
        sku="SKU001",
        warehouse_code="WH001",
        available_qty=100,
        reserved_qty=20,
        in_transit_qty=50,
        total_qty=170,
        event_id="SKU001.WH001.v1",
        on_hand_qty=120,
        presold_qty=0,
        outbound_qty=0,
        damaged_qty=0,
        version=1,
        cause_event_type="OrderCreated",
        cause_event_id="OMS-evt-0001",
        occurred_at=datetime(2025, 11, 22, 2, 30, tzinfo=UTC),
    )


# --- reading older writers ----------------------------------------------------------------------


def _older_order_created_schema() -> dict[str, Any]:
    """OrderCreated as if ``reservationExpiresAt`` had not been added yet."""
    old = json.loads(json.dumps(avro_schema(OrderCreated)))
    old["fields"] = [f for f in old["fields"] if f["name"] != "reservationExpiresAt"]
    return old


def _write_with(schema: dict[str, Any], wire_dict: dict[str, Any]) -> bytes:
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(json.loads(json.dumps(schema))), wire_dict)
    return body.getvalue()


def test_data_from_a_registered_older_writer_resolves_into_the_current_class() -> None:
    from fastavro.schema import to_parsing_canonical_form

    obj = order()
    old = _older_order_created_schema()
    wire_dict = default_registry().record_type(OrderCreated).to_wire(obj)
    del wire_dict["reservationExpiresAt"]
    wire = b"\xc3\x01" + fingerprint64(to_parsing_canonical_form(old)) + _write_with(old, wire_dict)

    registry = RecordRegistry(ALL_CLASSES)
    codec = Codec(registry=registry)
    with pytest.raises(UnknownSchemaError):
        codec.decode(wire)
    registry.add_writer_schema(old)
    for validate in (True, False):
        assert_identical(obj, codec.decode(wire, validate=validate))


# --- Confluent Schema Registry framing (mock registry) -----------------------------------------


@pytest.fixture
def mock_registry() -> Any:
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
    except ImportError as exc:  # confluent_kafka.schema_registry needs the extra's packages
        pytest.skip(
            f"confluent-kafka[schemaregistry] extra not installed ({exc.name} missing); "
            "the pinned confluent-kafka==2.16.1 alone cannot import schema_registry"
        )

    client = SchemaRegistryClient.new_client({"url": "mock://codec-tests"})
    assert type(client).__name__ == "MockSchemaRegistryClient"
    return client


def test_confluent_framing_round_trip(mock_registry: Any) -> None:
    obj = order()
    producer = Codec(ConfluentFraming(mock_registry))
    wire = producer.encode(obj, topic="orders")
    assert wire[:1] == b"\x00"
    schema_id = int.from_bytes(wire[1:5], "big")
    assert mock_registry.get_latest_version("orders-value").schema_id == schema_id
    assert producer.encode(obj, topic="orders") == wire  # id cached, registered once
    assert mock_registry.get_versions("orders-value") == [1]

    consumer = Codec(ConfluentFraming(mock_registry))  # knows no ids: fetches by id
    for validate in (True, False):
        assert_identical(obj, consumer.decode(wire, topic="orders", validate=validate))


def test_confluent_framing_is_what_confluent_deserializers_read(mock_registry: Any) -> None:
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    obj = order()
    ctx = SerializationContext("orders", MessageField.VALUE)
    record = default_registry().record_type(OrderCreated)
    wire = Codec(ConfluentFraming(mock_registry)).encode(obj, topic="orders")
    theirs = AvroDeserializer(mock_registry)(wire, ctx)
    assert theirs == record.to_wire(obj)

    serializer = AvroSerializer(
        mock_registry,
        json.dumps(record.schema),
        conf={"auto.register.schemas": False, "use.latest.version": True},
    )
    their_wire = serializer(record.to_wire(obj), ctx)
    assert_identical(obj, Codec(ConfluentFraming(mock_registry)).decode(their_wire, topic="orders"))


def test_confluent_framing_errors(mock_registry: Any) -> None:
    codec = Codec(ConfluentFraming(mock_registry))
    with pytest.raises(WireEncodeError, match="topic"):
        codec.encode(order())
    wire = codec.encode(order(), topic="orders")
    with pytest.raises(UnknownSchemaError):
        Codec(ConfluentFraming(mock_registry)).decode(b"\x00\x00\x00\x03\xe7" + wire[5:])
    with pytest.raises(WireDecodeError, match="bad magic"):
        codec.decode(b"\xc3" + wire[1:])
    with pytest.raises(WireDecodeError, match="truncated"):
        codec.decode(wire[:3])


def test_confluent_subject_name_strategy_is_pluggable(mock_registry: Any) -> None:
    from confluent_kafka.schema_registry import record_subject_name_strategy

    codec = Codec(ConfluentFraming(mock_registry, record_subject_name_strategy))
    codec.encode(order(), topic="orders")
    assert mock_registry.get_subjects() == ["inventory.center.v1.OrderCreated"]


def test_confluent_older_writer_schema_resolves(mock_registry: Any) -> None:
    from confluent_kafka.schema_registry import Schema

    obj = order()
    old = _older_order_created_schema()
    old_id = mock_registry.register_schema("orders-value", Schema(json.dumps(old), "AVRO"))
    wire_dict = default_registry().record_type(OrderCreated).to_wire(obj)
    del wire_dict["reservationExpiresAt"]
    wire = b"\x00" + old_id.to_bytes(4, "big") + _write_with(old, wire_dict)
    codec = Codec(ConfluentFraming(mock_registry), registry=RecordRegistry(ALL_CLASSES))
    assert_identical(obj, codec.decode(wire, topic="orders"))


# --- the registry --------------------------------------------------------------------------


def test_every_message_class_is_registered_with_a_distinct_fingerprint() -> None:
    registry = default_registry()
    fingerprints = {registry.record_type(cls).fingerprint for cls in ALL_CLASSES}
    assert len(fingerprints) == len(ALL_CLASSES)


def test_dataclass_post_init_failure_is_a_decode_error() -> None:
    @dataclasses.dataclass(frozen=True)
    class Positive:
        value: int

        def __post_init__(self) -> None:
            if self.value <= 0:
                raise ValueError("value must be > 0")

    registry = RecordRegistry([Positive])
    record = registry.record_type(Positive)
    wire = b"\xc3\x01" + record.fingerprint + _write_with(record.schema, {"value": -1})
    with pytest.raises(WireDecodeError, match="value must be > 0"):
        Codec(registry=registry).decode(wire)


def test_transfer_keeps_both_warehouses() -> None:
    transfer = TransferDispatched(
        event_id="WMS-evt-7",
        occurred_at=datetime(2025, 11, 22, tzinfo=UTC),
        transfer_no="TR-1",
        from_warehouse_code="WH001",
        to_warehouse_code="WH002",
        lines=[StockLine(sku="SKU001", quantity=5)],
    )
    assert_identical(transfer, decode(encode(transfer)))
