"""The wire codec: contract objects <-> Avro binary, framed so a reader finds the writer schema.

Framings, per :class:`Codec`: :class:`SingleObjectFraming` (default; the Avro spec's single-object
encoding: ``C3 01`` + the writer schema's 8-byte little-endian CRC-64-AVRO fingerprint of its
Parsing Canonical Form + the body; no registry) and :class:`ConfluentFraming` (Confluent's wire
format: ``00`` + 4-byte big-endian schema id + body; registered under ``<topic>-value`` or the
subject strategy given, looked up by id, both cached). Decoding validates into the pydantic model
unless ``validate=False`` (hops between our own partitions); either way ``decode(encode(x)) == x``.
Per-class work is done once, at registration: this is the per-event hot path. Errors:
:class:`WireDecodeError` (bad magic, truncated, garbage, trailing bytes), its subclass
:class:`UnknownSchemaError` (writer schema unknown); pydantic's ``ValidationError`` (well-formed
but breaking the contract); :class:`WireEncodeError` (an object its schema cannot write).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from functools import cache, lru_cache
from io import BytesIO
from typing import TYPE_CHECKING, Any, Protocol, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form
from pydantic import BaseModel, ValidationError

from schemas.avro_model import (
    NAMESPACE,
    avro_schema,
    contract_classes,
    is_record_class,
    optional_inner,
    record_fields,
    sequence_item,
    unwrap,
)

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

__all__ = [
    "Codec",
    "CodecError",
    "ConfluentFraming",
    "Framing",
    "RecordRegistry",
    "RecordType",
    "SingleObjectFraming",
    "UnknownSchemaError",
    "UnregisteredTypeError",
    "WireDecodeError",
    "WireEncodeError",
    "WriterSchema",
    "decode",
    "default_registry",
    "encode",
    "fingerprint64",
]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


# --- errors -------------------------------------------------------------------------------


class CodecError(Exception):
    """Base of the codec's own errors."""


class WireEncodeError(CodecError, ValueError):
    """The object cannot be written with its schema (e.g. a value of the wrong type)."""


class WireDecodeError(CodecError, ValueError):
    """The bytes are not a record we can read: bad magic, truncated, garbage, trailing data."""


class UnknownSchemaError(WireDecodeError):
    """The framing names a writer schema (fingerprint or registry id) this reader lacks."""


class UnregisteredTypeError(CodecError, TypeError):
    """``encode`` was given an object whose class has no registered schema."""


# --- per-class machinery ------------------------------------------------------------------

Converter = Callable[[Any], Any]


def fingerprint64(canonical_form: str) -> bytes:
    """CRC-64-AVRO (Rabin) fingerprint of a Parsing Canonical Form: 8 bytes, little-endian.

    fastavro returns the hex of the little-endian bytes already (as the Java implementation
    and the single-object encoding lay them out), so ``bytes.fromhex`` is the whole job.
    """
    return bytes.fromhex(_fastavro_fingerprint(canonical_form, "CRC-64-AVRO"))


def _encoder(annotation: Any) -> Converter | None:
    """Python value -> what fastavro writes; ``None`` means the value goes as it is.

    fastavro takes str/int/bool/bytes, aware datetimes, Decimals and StrEnum members (they
    are strs) directly; only records need turning into dicts, inside lists and optionals too.
    """
    bare, _ = unwrap(annotation)
    inner = optional_inner(bare)
    if inner is not None:
        convert_inner = _encoder(inner)
        if convert_inner is None:
            return None
        return lambda value: None if value is None else convert_inner(value)
    if is_record_class(bare):
        return _record_encoder(bare)
    seq = sequence_item(bare)
    if seq is not None:
        convert_item = _encoder(seq[0])
        if convert_item is None:
            return None  # fastavro writes lists and tuples alike
        return lambda values: [convert_item(value) for value in values]
    return None


def _decoder(annotation: Any) -> Converter | None:
    """What fastavro read -> the Python value, without validation; ``None``: as it is."""
    bare, _ = unwrap(annotation)
    inner = optional_inner(bare)
    if inner is not None:
        convert_inner = _decoder(inner)
        if convert_inner is None:
            return None
        return lambda value: None if value is None else convert_inner(value)
    if isinstance(bare, type) and issubclass(bare, Enum):
        return {str(member.value): member for member in bare}.__getitem__
    if is_record_class(bare):
        return _record_decoder(bare)
    seq = sequence_item(bare)
    if seq is not None:
        convert_item = _decoder(seq[0])
        if seq[1] is tuple:
            if convert_item is None:
                return tuple
            return lambda values: tuple([convert_item(value) for value in values])
        if convert_item is None:
            return None
        return lambda values: [convert_item(value) for value in values]
    return None  # datetimes come back aware (UTC), decimals as Decimal


@cache
def _record_encoder(cls: type) -> Converter:
    """obj -> {wireName: value}, reading attributes directly (no model_dump)."""
    plan = tuple((spec.attr, spec.wire_name, _encoder(spec.annotation)) for spec in record_fields(cls))
    if all(convert is None for _, _, convert in plan):
        pairs = tuple((attr, name) for attr, name, _ in plan)
        return lambda obj: {name: getattr(obj, attr) for attr, name in pairs}

    def to_wire(obj: Any) -> dict[str, Any]:
        return {
            name: getattr(obj, attr) if convert is None else convert(getattr(obj, attr)) for attr, name, convert in plan
        }

    return to_wire


@cache
def _record_decoder(cls: type) -> Converter:
    """{wireName: value} -> instance, trusting the data (no validation)."""
    plan = tuple((spec.attr, spec.wire_name, _decoder(spec.annotation)) for spec in record_fields(cls))

    def values(record: dict[str, Any]) -> dict[str, Any]:
        return {attr: record[name] if convert is None else convert(record[name]) for attr, name, convert in plan}

    if issubclass(cls, BaseModel):
        # What BaseModel.model_construct does, minus its per-field default/alias search
        # (every field is present here): ~1.5 us instead of ~6 us for InventoryChanged.
        # tests/unit/core/test_codec.py checks the result matches model_construct's.
        field_names = frozenset(cls.model_fields)
        new = object.__new__
        setattr_ = object.__setattr__
        if cls.__pydantic_post_init__ or cls.__private_attributes__:
            return lambda record: cls.model_construct(set(field_names), **values(record))

        def construct(record: dict[str, Any]) -> Any:
            obj = new(cls)
            setattr_(obj, "__dict__", values(record))
            setattr_(obj, "__pydantic_fields_set__", set(field_names))
            setattr_(obj, "__pydantic_extra__", None)
            setattr_(obj, "__pydantic_private__", None)
            return obj

        return construct

    return lambda record: cls(**values(record))


@dataclass(frozen=True, eq=False)
class RecordType:
    """One registered class with everything the hot path needs, computed once."""

    cls: type
    schema: dict[str, Any]
    """The generated Avro schema (the content of ``schemas/avro/<Name>.avsc``)."""
    parsed: Any
    """fastavro's parsed form of :attr:`schema`."""
    canonical_form: str
    fingerprint: bytes
    """CRC-64-AVRO of :attr:`canonical_form`, 8 bytes little-endian."""
    to_wire: Converter
    from_wire_trusted: Converter
    from_wire_validated: Converter

    @property
    def fullname(self) -> str:
        return f"{NAMESPACE}.{self.cls.__name__}"

    @classmethod
    def of(cls, record_class: type) -> RecordType:
        schema = avro_schema(record_class)
        # fastavro's parsed form carries private keys: parse a copy, keep `schema` plain JSON.
        parsed = parse_schema(json.loads(json.dumps(schema)))
        canonical = to_parsing_canonical_form(schema)
        if issubclass(record_class, BaseModel):
            validated: Converter = record_class.model_validate
        else:
            # a dataclass has no validation to run. (The cast: mypy narrows this branch to
            # type[object], which it then finds not Hashable for the cache.)
            validated = _record_decoder(cast(type, record_class))
        return cls(
            cls=record_class,
            schema=schema,
            parsed=parsed,
            canonical_form=canonical,
            fingerprint=fingerprint64(canonical),
            to_wire=_record_encoder(record_class),
            from_wire_trusted=_record_decoder(record_class),
            from_wire_validated=validated,
        )


@dataclass(frozen=True, eq=False)
class WriterSchema:
    """A schema some producer wrote with, and how to read it into its class."""

    record: RecordType
    """The class (and reader schema) the data decodes into."""
    parsed: Any
    """fastavro's parsed writer schema."""
    fingerprint: bytes
    reader_schema: Any
    """``None`` when the writer schema is the current one, else the reader schema to
    resolve into (an older/newer version of the record: Avro schema resolution)."""


class RecordRegistry:
    """Classes <-> schemas <-> fingerprints. Reads are lock-free; registration is locked."""

    def __init__(self, classes: Iterable[type] = ()) -> None:
        self._lock = threading.Lock()
        self._by_class: dict[type, RecordType] = {}
        self._by_name: dict[str, RecordType] = {}
        self._by_fingerprint: dict[bytes, WriterSchema] = {}
        for cls in classes:
            self.register(cls)

    def register(self, cls: type) -> RecordType:
        with self._lock:
            known = self._by_class.get(cls)
            if known is not None:
                return known
            record = RecordType.of(cls)
            other = self._by_name.get(record.fullname)
            if other is not None:
                raise TypeError(f"{record.fullname} is already {other.cls!r}, not {cls!r}")
            clash = self._by_fingerprint.get(record.fingerprint)
            if clash is not None:
                # Same parsing canonical form (docs/defaults aside) under the same name is
                # impossible here, so this would be a real 64-bit collision: refuse loudly.
                raise TypeError(f"fingerprint of {cls!r} collides with {clash.record.cls!r}")
            self._by_class[cls] = record
            self._by_name[record.fullname] = record
            self._by_fingerprint[record.fingerprint] = WriterSchema(record, record.parsed, record.fingerprint, None)
            return record

    def record_type(self, cls: type) -> RecordType:
        try:
            return self._by_class[cls]
        except KeyError:
            raise UnregisteredTypeError(f"{cls.__module__}.{cls.__qualname__} has no registered Avro schema") from None

    @property
    def record_types(self) -> tuple[RecordType, ...]:
        return tuple(self._by_class.values())

    def by_fingerprint(self, fingerprint: bytes) -> WriterSchema:
        try:
            return self._by_fingerprint[fingerprint]
        except KeyError:
            raise UnknownSchemaError(
                f"unknown writer schema fingerprint {fingerprint.hex()} (CRC-64-AVRO, LE): "
                "not one of this reader's records nor a registered older version"
            ) from None

    def add_writer_schema(self, schema: dict[str, Any] | str) -> WriterSchema:
        """Accept data written with another version of a registered record (e.g. the
        previous ``.avsc``): it is read with Avro schema resolution into the current class.
        Returns the existing entry when the schema is the current one."""
        if isinstance(schema, str):
            schema = json.loads(schema)
        assert isinstance(schema, dict)
        canonical = to_parsing_canonical_form(schema)
        fp = fingerprint64(canonical)
        known = self._by_fingerprint.get(fp)
        if known is not None:
            return known
        name = schema.get("name", "")
        fullname = name if "." in name else f"{schema.get('namespace', '')}.{name}"
        record = self._by_name.get(fullname)
        if record is None:
            raise UnknownSchemaError(f"writer schema {fullname!r} names no registered record")
        try:
            parsed = parse_schema(json.loads(json.dumps(schema)))
        except Exception as exc:  # fastavro raises several kinds for a bad schema
            raise UnknownSchemaError(f"writer schema {fullname!r} does not parse: {exc}") from exc
        with self._lock:
            entry = self._by_fingerprint.setdefault(fp, WriterSchema(record, parsed, fp, record.parsed))
        return entry


@lru_cache(maxsize=1)
def default_registry() -> RecordRegistry:
    """Every message class (inputs, outputs, internal) and what ``register_records`` added
    (the core's state records register themselves: ``tables/state.py``)."""
    return RecordRegistry(contract_classes().values())


def register_records(classes: Iterable[type]) -> None:
    """Make the default codec encode and decode ``classes`` too (records of a floor above the
    contracts, which the contracts must not import)."""
    registry = default_registry()
    for cls in classes:
        registry.register(cls)


# --- framing ------------------------------------------------------------------------------


class Framing(Protocol):
    """How a writer schema is named in front of the Avro body."""

    def header(self, record: RecordType, topic: str | None) -> bytes:
        """Bytes to put before the body of ``record``'s class written to ``topic``."""
        ...

    def read_header(self, data: bytes, topic: str | None, registry: RecordRegistry) -> tuple[WriterSchema, int]:
        """The writer schema named by ``data``'s header and where the body starts."""
        ...


class SingleObjectFraming:
    """Avro single-object encoding: ``C3 01`` + 8-byte LE CRC-64-AVRO fingerprint."""

    HEADER_SIZE = 10

    def header(self, record: RecordType, topic: str | None) -> bytes:
        return SINGLE_OBJECT_MAGIC + record.fingerprint

    def read_header(self, data: bytes, topic: str | None, registry: RecordRegistry) -> tuple[WriterSchema, int]:
        if len(data) < self.HEADER_SIZE:
            raise WireDecodeError(f"truncated: {len(data)} bytes, a single-object header alone is 10")
        if data[:2] != SINGLE_OBJECT_MAGIC:
            raise WireDecodeError(f"bad magic {bytes(data[:2]).hex()}: not Avro single-object encoding (c301)")
        return registry.by_fingerprint(bytes(data[2:10])), self.HEADER_SIZE


SubjectNameStrategy = Callable[[Any, str | None], str | None]
"""confluent_kafka's shape: ``(SerializationContext, record fullname) -> subject``."""


class ConfluentFraming:
    """Confluent Schema Registry wire format: ``00`` + 4-byte big-endian schema id.

    Encoding registers the writer schema once per (subject, class) and caches the id;
    decoding fetches an unknown id once and caches what it resolves to. Values only: the
    subject comes from ``subject_name_strategy`` with ``MessageField.VALUE`` (by default
    ``<topic>-value``), so ``topic`` is required to encode.
    """

    HEADER_SIZE = 5

    def __init__(
        self,
        registry_client: SchemaRegistryClient,
        subject_name_strategy: SubjectNameStrategy | None = None,
        *,
        auto_register: bool = True,
    ) -> None:
        from confluent_kafka.schema_registry import topic_subject_name_strategy

        self._client = registry_client
        self._subject_name = subject_name_strategy or topic_subject_name_strategy
        self._auto_register = auto_register
        self._ids: dict[tuple[str | None, type], bytes] = {}
        self._writers: dict[int, WriterSchema] = {}

    def subject(self, record: RecordType, topic: str | None) -> str:
        from confluent_kafka.serialization import MessageField, SerializationContext

        if topic is None:
            raise WireEncodeError("ConfluentFraming needs the topic to name the subject")
        subject = self._subject_name(SerializationContext(topic, MessageField.VALUE), record.fullname)
        if not subject:
            raise WireEncodeError(f"subject name strategy gave no subject for {topic!r}")
        return subject

    def header(self, record: RecordType, topic: str | None) -> bytes:
        key = (topic, record.cls)
        header = self._ids.get(key)
        if header is None:
            from confluent_kafka.schema_registry import Schema
            from confluent_kafka.schema_registry.error import SchemaRegistryError

            subject = self.subject(record, topic)
            schema = Schema(json.dumps(record.schema, sort_keys=True), "AVRO")
            try:
                if self._auto_register:
                    schema_id = self._client.register_schema(subject, schema)
                else:
                    looked_up = self._client.lookup_schema(subject, schema).schema_id
                    if looked_up is None:  # typed optional by the client; a lookup that succeeded has one
                        raise WireEncodeError(f"{record.fullname} under subject {subject!r}: the registry gave no id")
                    schema_id = looked_up
            except SchemaRegistryError as exc:  # e.g. 409: incompatible with the subject
                raise WireEncodeError(f"{record.fullname} under subject {subject!r}: {exc}") from exc
            header = CONFLUENT_MAGIC + int(schema_id).to_bytes(4, "big")
            self._ids[key] = header
            # Our own id needs no round trip to the registry when we read it back.
            self._writers.setdefault(int(schema_id), WriterSchema(record, record.parsed, record.fingerprint, None))
        return header

    def read_header(self, data: bytes, topic: str | None, registry: RecordRegistry) -> tuple[WriterSchema, int]:
        if len(data) < self.HEADER_SIZE:
            raise WireDecodeError(f"truncated: {len(data)} bytes, a Confluent header alone is 5")
        if data[:1] != CONFLUENT_MAGIC:
            raise WireDecodeError(f"bad magic {bytes(data[:1]).hex()}: not Confluent Schema Registry framing (00)")
        schema_id = int.from_bytes(data[1:5], "big")
        writer = self._writers.get(schema_id)
        if writer is None:
            writer = self._fetch(schema_id, registry)
        return writer, self.HEADER_SIZE

    def _fetch(self, schema_id: int, registry: RecordRegistry) -> WriterSchema:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            raise UnknownSchemaError(f"schema id {schema_id}: {exc}") from exc
        if (schema.schema_type or "AVRO") != "AVRO":
            raise UnknownSchemaError(f"schema id {schema_id} is {schema.schema_type}, not AVRO")
        if schema.schema_str is None:  # typed optional by the client; without the text nothing can be read
            raise UnknownSchemaError(f"schema id {schema_id}: the registry returned no schema text")
        writer = registry.add_writer_schema(schema.schema_str)
        self._writers[schema_id] = writer
        return writer


# --- the codec ----------------------------------------------------------------------------


class Codec:
    """Encode/decode registered records with one framing.

    >>> codec = Codec()                                   # single-object encoding
    >>> codec = Codec(ConfluentFraming(client))           # Schema Registry ids
    >>> codec.decode(codec.encode(event, topic="orders"), topic="orders") == event
    """

    def __init__(self, framing: Framing | None = None, registry: RecordRegistry | None = None):
        self.framing: Framing = framing if framing is not None else SingleObjectFraming()
        self.registry = registry if registry is not None else default_registry()

    def encode(self, obj: Any, *, topic: str | None = None) -> bytes:
        record = self.registry.record_type(type(obj))
        buffer = BytesIO()
        buffer.write(self.framing.header(record, topic))
        try:
            schemaless_writer(buffer, record.parsed, record.to_wire(obj))
        except Exception as exc:  # fastavro: TypeError/ValueError/AttributeError/... by type
            raise WireEncodeError(f"{type(obj).__name__}: cannot write: {exc!r}") from exc
        return buffer.getvalue()

    def decode(self, data: bytes, *, topic: str | None = None, validate: bool = True) -> Any:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise WireDecodeError(f"expected bytes, got {type(data).__name__}")
        writer, offset = self.framing.read_header(data, topic, self.registry)
        buffer = BytesIO(data)
        buffer.seek(offset)
        try:
            wire = schemaless_reader(buffer, writer.parsed, writer.reader_schema)
        except Exception as exc:  # fastavro: EOFError, UnicodeDecodeError, IndexError, ...
            raise WireDecodeError(
                f"{writer.record.cls.__name__}: unreadable Avro body at byte {buffer.tell()} of {len(data)}: {exc!r}"
            ) from exc
        if buffer.tell() != len(data):
            raise WireDecodeError(
                f"{writer.record.cls.__name__}: {len(data) - buffer.tell()} trailing bytes after the record"
            )
        build = writer.record.from_wire_validated if validate else writer.record.from_wire_trusted
        try:
            return build(wire)
        except ValidationError:
            raise  # a well-formed record that breaks the contract: the caller's VALIDATION case
        except (KeyError, TypeError, ValueError) as exc:  # e.g. a dataclass __post_init__ check
            raise WireDecodeError(f"{writer.record.cls.__name__}: {exc!r}") from exc


@lru_cache(maxsize=1)
def _default_codec() -> Codec:
    return Codec()


def encode(obj: Any, *, topic: str | None = None) -> bytes:
    """Single-object encoding of a registered record (``topic`` is not needed, accepted)."""
    return _default_codec().encode(obj, topic=topic)


def decode(data: bytes, *, topic: str | None = None, validate: bool = True) -> Any:
    """Inverse of :func:`encode`; see :meth:`Codec.decode`."""
    return _default_codec().decode(data, topic=topic, validate=validate)
