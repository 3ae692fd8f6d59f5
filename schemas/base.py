"""Shared building blocks of every contract: the camelCase base model and bounded types.

Field names follow the seed's data standard on the wire (camelCase: ``orderNo``,
``warehouseCode``, ``availableQty``); Python code uses snake_case attributes.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

# Codes are used inside composite table keys (joined with "|"), so they exclude the separator,
# whitespace and control characters.
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/#-]*$"

Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=CODE_PATTERN)]
WarehouseCode = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=CODE_PATTERN)]
DocumentNo = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=CODE_PATTERN)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=CODE_PATTERN)]
# Ids the pipeline derives from input ids (``<eventId>|<sku>|<step>``, ``<orderNo>|v<n>``,
# expiry timestamps with ``+``): longer, and "|" and "+" allowed.
DERIVED_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/#|+-]*$"
DerivedId = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=DERIVED_ID_PATTERN)]
ShortText = Annotated[str, StringConstraints(max_length=256)]
LongText = Annotated[str, StringConstraints(max_length=1024)]

MAX_QTY = 1_000_000
MAX_LINES = 200

Quantity = Annotated[int, Field(gt=0, le=MAX_QTY, strict=True)]
NonNegativeQty = Annotated[int, Field(ge=0, le=MAX_QTY, strict=True)]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
Timestamp = AwareDatetime


class SourceSystem(StrEnum):
    OMS = "OMS"
    WMS = "WMS"
    TMS = "TMS"
    ERP = "ERP"
    INVENTORY_CENTER = "INVENTORY_CENTER"


class Contract(BaseModel):
    """Base of every contract: frozen, camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )

    def wire(self) -> dict[str, Any]:
        """The camelCase dict that goes on the wire (Avro record or JSON line)."""
        return self.model_dump(by_alias=True)


class Event(Contract):
    """Every input event carries a unique id, when it happened and which system said so."""

    source_system: ClassVar[SourceSystem]

    event_id: EventId = Field(description="Unique id of this event, used for deduplication.")
    occurred_at: Timestamp = Field(description="When it happened at the source (timezone-aware).")
    source: SourceSystem = Field(description="The system that published the event.")

    @property
    def event_type(self) -> str:
        return type(self).__name__


def utc_iso(ts: datetime) -> str:
    return ts.isoformat()
