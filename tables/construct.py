"""Building the core's messages and records fast: its top hotspots were object creation.

The core emits several contract objects per command (InventoryChanged, ledger entries,
alerts, reservation answers, commands), from values it computed itself: they need no
validation, which is why it used pydantic's ``model_construct``. That method still walks
every field's aliases and defaults (camelCase aliases make it the core's top hotspot, about
10 µs per object). ``construct`` makes the same object - same ``__dict__`` in field order,
same fields-set, no extra, no private state - but requires every field, which the core
always passes. ``evolve`` is the same idea for the frozen state records.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel


class _Slotted(Protocol):
    """A record with slots: ``@dataclass(frozen=True, slots=True)`` (tables/state.py)."""

    __slots__: ClassVar[tuple[str, ...]]


M = TypeVar("M", bound=BaseModel)
R = TypeVar("R", bound=_Slotted)
_set = object.__setattr__
_new = object.__new__


def construct(cls: type[M], **values: Any) -> M:
    """``cls.model_construct(**values)`` for a complete set of field values (by field name)."""
    fields = cls.__pydantic_fields__
    if len(values) != len(fields):
        missing = set(fields) - set(values)
        raise TypeError(f"{cls.__name__}: missing {sorted(missing)} / unknown {sorted(set(values) - set(fields))}")
    model = cls.__new__(cls)
    _set(model, "__dict__", {name: values[name] for name in fields})
    _set(model, "__pydantic_fields_set__", set(fields))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def evolve(record: R, **changes: Any) -> R:
    """``dataclasses.replace`` for the core's frozen, slotted state records (tables/state.py),
    in one pass and without re-running ``__init__``; they have no ``__post_init__``."""
    cls = type(record)
    new = _new(cls)
    used = 0
    for name in cls.__slots__:
        if name in changes:
            _set(new, name, changes[name])
            used += 1
        else:
            _set(new, name, getattr(record, name))
    if used != len(changes):
        raise TypeError(f"{cls.__name__} has no field {sorted(set(changes) - set(cls.__slots__))}")
    return new


def fingerprint(model: BaseModel, skip: frozenset[str] = frozenset()) -> str:
    """A short, stable digest of a message's content (its field values but ``skip``): two
    messages with the same id and different fingerprints are different messages. Stable
    across processes (no ``hash()``): field values' reprs are deterministic."""
    content = repr([(k, v) for k, v in model.__dict__.items() if k not in skip])
    return hashlib.blake2b(content.encode(), digest_size=8).hexdigest()
