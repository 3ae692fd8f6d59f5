"""The Avro wire contract derived from the models: ``avro_schema(cls)`` for a pydantic contract
or a frozen dataclass record, and the record classes the codec knows.

Types (anything else is a ``TypeError`` naming the field, never a silent guess): ``str`` /
``bytes`` / ``bool`` -> ``string`` / ``bytes`` / ``boolean``; ``int`` -> ``long`` (the same
varint, no 2^31 trap); ``datetime``, ``AwareDatetime`` -> ``long`` + ``timestamp-micros``;
``Decimal`` -> ``bytes`` + ``decimal``, precision/scale from the field's ``max_digits`` /
``decimal_places``, else 14/2 (money); ``StrEnum`` -> named ``enum`` (symbols are the values);
pydantic model / dataclass -> named ``record``; ``list[X]``, ``tuple[X, ...]`` -> ``array``;
``X | None`` -> ``["null", X]`` with default ``null``. Every named type lives in
:data:`NAMESPACE`, is defined once per schema (at its first use) and referenced by full name
afterwards, as the Avro spec requires.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticUndefined

NAMESPACE = "inventory.center.v1"
AVRO_DIR = Path(__file__).resolve().parent / "avro"

TIMESTAMP_MICROS: dict[str, Any] = {"type": "long", "logicalType": "timestamp-micros"}
MONEY_PRECISION = 14
MONEY_SCALE = 2

REQUIRED: Any = dataclasses.MISSING
"""Marker of a field without a default (it is the same object dataclasses use)."""

_NONE_TYPE = type(None)
_PRIMITIVES: dict[type, str] = {bool: "boolean", int: "long", str: "string", bytes: "bytes"}


@dataclass(frozen=True)
class FieldSpec:
    """One field of a record, as both the schema generator and the codec see it."""

    attr: str
    """Python attribute (snake_case)."""
    wire_name: str
    """Avro field name (camelCase, the pydantic alias)."""
    annotation: Any
    """Type, possibly ``Annotated``; see :func:`unwrap`."""
    doc: str
    default: Any
    """Python default value, or :data:`REQUIRED`."""
    metadata: tuple[Any, ...] = ()
    """pydantic constraint metadata of the field (``max_digits`` etc.)."""


def is_record_class(tp: Any) -> bool:
    return isinstance(tp, type) and (issubclass(tp, BaseModel) or dataclasses.is_dataclass(tp))


def record_fields(cls: type) -> tuple[FieldSpec, ...]:
    """The fields of a pydantic model or a dataclass, in declaration order."""
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        specs = []
        for name, info in cls.model_fields.items():
            if info.default_factory is not None:
                default = info.default_factory()  # type: ignore[call-arg]  # ours take no argument (pydantic's may take the data)
            elif info.default is PydanticUndefined:
                default = REQUIRED
            else:
                default = info.default
            specs.append(
                FieldSpec(
                    attr=name,
                    wire_name=info.alias or name,
                    annotation=info.annotation,
                    doc=info.description or name,
                    default=default,
                    metadata=tuple(info.metadata),
                )
            )
        return tuple(specs)
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls, include_extras=True)
        specs = []
        # init=False fields are derived in __post_init__: they are rebuilt, not transmitted.
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = REQUIRED
            specs.append(
                FieldSpec(
                    attr=f.name,
                    wire_name=f.metadata.get("alias") or to_camel(f.name),
                    annotation=hints[f.name],
                    doc=f.metadata.get("doc") or f.name,
                    default=default,
                )
            )
        return tuple(specs)
    raise TypeError(f"{cls!r} is neither a pydantic model nor a dataclass")


def unwrap(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    """Strip ``Annotated`` layers: the bare type and the collected metadata."""
    metadata: tuple[Any, ...] = ()
    while get_origin(annotation) is Annotated:
        metadata = (*metadata, *annotation.__metadata__)
        annotation = annotation.__origin__
    return annotation, metadata


def optional_inner(annotation: Any) -> Any | None:
    """``X`` for ``X | None`` / ``Optional[X]``; ``None`` when the type is not optional."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        rest = [a for a in args if a is not _NONE_TYPE]
        if len(rest) == 1 and len(args) == 2:
            return rest[0]
        raise TypeError(f"only X | None unions map to Avro here, not {annotation!r}")
    return None


def sequence_item(annotation: Any) -> tuple[Any, type] | None:
    """``(X, list)`` for ``list[X]``, ``(X, tuple)`` for ``tuple[X, ...]``; else ``None``."""
    origin = get_origin(annotation)
    if origin is list:
        (item,) = get_args(annotation)
        return item, list
    if origin is tuple:
        args = get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0], tuple
        raise TypeError(f"only variadic tuple[X, ...] maps to an Avro array, not {annotation!r}")
    return None


def is_timestamp(tp: Any) -> bool:
    return tp is AwareDatetime or (isinstance(tp, type) and issubclass(tp, datetime))


def decimal_shape(metadata: Iterable[Any]) -> tuple[int, int]:
    """(precision, scale) of a Decimal field: its max_digits/decimal_places, else money."""
    precision, scale = MONEY_PRECISION, MONEY_SCALE
    for item in metadata:
        precision = getattr(item, "max_digits", None) or precision
        places = getattr(item, "decimal_places", None)
        scale = places if places is not None else scale
    return precision, scale


def _doc_of(cls: type) -> str | None:
    doc = cls.__dict__.get("__doc__")
    if not doc:
        return None
    # dataclasses invent "Name(field: type, ...)" as a docstring; that is not documentation.
    if dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}("):
        return None
    return inspect.cleandoc(doc)


class _SchemaBuilder:
    """Builds one self-contained schema: each named type defined once, then referenced."""

    def __init__(self) -> None:
        self._defined: dict[str, type] = {}

    def _name(self, cls: type) -> str | None:
        """Full name if already defined in this schema (then reference it), else None."""
        full = f"{NAMESPACE}.{cls.__name__}"
        seen = self._defined.get(full)
        if seen is None:
            self._defined[full] = cls
            return None
        if seen is not cls:
            raise TypeError(f"two different types are both named {full}: {seen!r}, {cls!r}")
        return full

    def record(self, cls: type) -> dict[str, Any] | str:
        ref = self._name(cls)
        if ref is not None:
            return ref
        schema: dict[str, Any] = {"type": "record", "name": cls.__name__, "namespace": NAMESPACE}
        doc = _doc_of(cls)
        if doc:
            schema["doc"] = doc
        fields = []
        for spec in record_fields(cls):
            try:
                fields.append(self.field(spec))
            except TypeError as exc:
                raise TypeError(f"{cls.__name__}.{spec.attr}: {exc}") from exc
        schema["fields"] = fields
        return schema

    def enum(self, cls: type[Enum]) -> dict[str, Any] | str:
        ref = self._name(cls)
        if ref is not None:
            return ref
        schema: dict[str, Any] = {"type": "enum", "name": cls.__name__, "namespace": NAMESPACE}
        doc = _doc_of(cls)
        if doc:
            schema["doc"] = doc
        schema["symbols"] = [str(member.value) for member in cls]
        return schema

    def field(self, spec: FieldSpec) -> dict[str, Any]:
        bare, metadata = unwrap(spec.annotation)
        metadata = (*spec.metadata, *metadata)
        out: dict[str, Any] = {"name": spec.wire_name, "doc": spec.doc}
        inner = optional_inner(bare)
        if inner is not None:
            inner_type = self.type_of(inner, metadata)
            if spec.default is None or spec.default is REQUIRED:
                # Nullable fields default to null even when the model requires them: a reader
                # can then fill the field in from a writer that did not have it yet.
                out["type"] = ["null", inner_type]
                out["default"] = None
            else:
                # Avro: a union field's default must match the union's first branch.
                out["type"] = [inner_type, "null"]
                out["default"] = default_json(inner, spec.default)
            return out
        out["type"] = self.type_of(bare, metadata)
        if spec.default is not REQUIRED:
            out["default"] = default_json(bare, spec.default)
        return out

    def type_of(self, annotation: Any, metadata: tuple[Any, ...] = ()) -> Any:
        bare, more = unwrap(annotation)
        metadata = (*metadata, *more)
        if optional_inner(bare) is not None:
            return ["null", self.type_of(optional_inner(bare))]
        if bare in _PRIMITIVES:
            return _PRIMITIVES[bare]
        if is_timestamp(bare):
            return dict(TIMESTAMP_MICROS)
        if bare is Decimal:
            precision, scale = decimal_shape(metadata)
            return {
                "type": "bytes",
                "logicalType": "decimal",
                "precision": precision,
                "scale": scale,
            }
        if isinstance(bare, type) and issubclass(bare, Enum):
            return self.enum(bare)
        if is_record_class(bare):
            return self.record(bare)
        seq = sequence_item(bare)
        if seq is not None:
            return {"type": "array", "items": self.type_of(seq[0])}
        raise TypeError(f"no Avro mapping for {annotation!r}")


def default_json(annotation: Any, value: Any) -> Any:
    """A Python default as the JSON the Avro spec wants for a field of that type."""
    bare, _ = unwrap(annotation)
    if value is None:
        return None
    inner = optional_inner(bare)
    if inner is not None:
        return default_json(inner, value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin-1")  # Avro JSON encodes bytes defaults as code points 0-255
    seq = sequence_item(bare)
    if seq is not None:
        return [default_json(seq[0], item) for item in value]
    if is_record_class(bare):
        return {
            spec.wire_name: default_json(spec.annotation, getattr(value, spec.attr)) for spec in record_fields(bare)
        }
    raise TypeError(f"no Avro default for {value!r} of {annotation!r}")


def avro_schema(cls: type) -> dict[str, Any]:
    """The Avro record schema of a pydantic contract or a frozen dataclass."""
    schema = _SchemaBuilder().record(cls)
    assert isinstance(schema, dict)
    return schema


def render(schema: Mapping[str, Any]) -> str:
    """The .avsc text: pretty, keys sorted, so regeneration is byte-stable."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def contract_classes(extra: Iterable[type] = ()) -> dict[str, type]:
    """Every message record with its own .avsc (inputs, outputs, internal) and ``extra``, by name."""
    from schemas.inputs import INPUT_EVENTS
    from schemas.internal import INTERNAL_MESSAGES
    from schemas.outputs import OUTPUT_EVENTS

    found: dict[str, type] = {}
    for group in (INPUT_EVENTS.values(), OUTPUT_EVENTS.values(), INTERNAL_MESSAGES.values(), extra):
        for cls in group:
            if found.setdefault(cls.__name__, cls) is not cls:
                raise TypeError(f"two record classes are named {cls.__name__}")
    return dict(sorted(found.items()))
