"""The OpenAPI 3 document of the worker's JSON views (served at /openapi.json).

tests/integration/test_api_fuzz.py runs schemathesis against a live worker with it: no 5xx,
and every response matches what is written here.
"""

from __future__ import annotations

from typing import Any

from schemas.base import CODE_PATTERN
from streams.answers import QUANTITIES

_CODE = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": CODE_PATTERN}
_ONE_CODE = CODE_PATTERN.strip("^$")
_CODE_LIST = f"^{_ONE_CODE}(,{_ONE_CODE}){{0,199}}$"  # 1 to 200 comma-separated codes
_INT = {"type": "integer"}
_QUANTITIES = QUANTITIES

POSITION = {
    "type": "object",
    "description": "One SKU in one warehouse: the seed's inventory data standard plus the detail.",
    "required": ["sku", "warehouseCode", *_QUANTITIES, "version", "updatedAt"],
    "properties": {
        "sku": {"type": "string"},
        "warehouseCode": {"type": "string"},
        **{name: _INT for name in _QUANTITIES},
        "version": _INT,
        "updatedAt": {"type": ["string", "null"], "format": "date-time"},
    },
    "additionalProperties": False,
}
SKU_INVENTORY = {
    "type": "object",
    "required": ["sku", "warehouses", "network"],
    "properties": {
        "sku": {"type": "string"},
        "warehouses": {"type": "array", "items": {"$ref": "#/components/schemas/Position"}},
        "network": {
            "type": "object",
            "description": "Sums over every warehouse of the SKU.",
            "required": list(_QUANTITIES),
            "properties": {name: _INT for name in _QUANTITIES},
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
BATCH = {
    "type": "object",
    "required": ["items", "missing"],
    "properties": {
        "items": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/SkuInventory"}},
        "missing": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}
ORDER = {
    "type": "object",
    "required": [
        "orderNo",
        "status",
        "orderType",
        "known",
        "paid",
        "version",
        "reservationExpiresAt",
        "lines",
        "timeline",
    ],
    "properties": {
        "orderNo": {"type": "string"},
        "status": {"type": "string"},
        "orderType": {"type": "string", "enum": ["NORMAL", "PRESALE", "GIFT"]},
        "known": {"type": "boolean"},
        "paid": {"type": "boolean"},
        "version": _INT,
        "reservationExpiresAt": {"type": ["string", "null"], "format": "date-time"},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string"},
                    "quantity": _INT,
                    "warehouseCode": {"type": ["string", "null"]},
                    "reservationState": {"type": "string"},
                    "reservedQty": _INT,
                    "presoldQty": _INT,
                    "shortQty": _INT,
                    "shippedQty": _INT,
                    "deliveredQty": _INT,
                    "returnedQty": _INT,
                    "splits": {
                        "type": "array",
                        "description": "A line split across warehouses: its parts at warehouses "
                        "other than warehouseCode (reservedQty is the line's total).",
                        "items": {
                            "type": "object",
                            "properties": {"warehouseCode": {"type": "string"}, "reservedQty": _INT},
                        },
                    },
                },
            },
        },
        "timeline": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "at": {"type": "string", "format": "date-time"},
                    "what": {"type": "string"},
                    "causeEventId": {"type": "string"},
                },
            },
        },
    },
}
ERROR = {
    "type": "object",
    "required": ["error", "status"],
    "properties": {"error": {"type": "string"}, "status": _INT},
}


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "Malformed path or query",
        404: "Unknown",
        502: "The owning worker failed",
        503: "Partitions are being assigned",
    }
    words.update(_WEBHOOK_ERRORS)
    return {str(c): _json("#/components/schemas/Error", words[c]) for c in codes}


_WEBHOOK_ERRORS = {
    401: "Missing or wrong bearer token",
    408: "Body not received in time",
    413: "Body larger than the limit",
    415: "Not application/json",
    422: "Not a valid event (each invalid item with its index and field errors)",
}

_EVENT_BODY = {
    "type": "object",
    "required": ["eventType", "eventId", "occurredAt"],
    "description": "An input event in the contract's JSON (camelCase), as connectors.produce reads",
}


def _webhook(source: str, events: str) -> dict[str, Any]:
    responses = {
        "202": {
            "description": "Accepted: every record acknowledged by the broker",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["accepted", "events"],
                        "properties": {
                            "accepted": {"type": "integer"},
                            "events": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "eventId": {"type": "string"},
                                        "topic": {"type": "string"},
                                        "partition": {"type": "integer"},
                                        "offset": {"type": "integer"},
                                    },
                                },
                            },
                        },
                    }
                }
            },
        }
    }
    for code, words in {
        400: "Not JSON",
        **_WEBHOOK_ERRORS,
        503: "Webhook off (no token set), or the broker/registry did not acknowledge",
    }.items():
        responses[str(code)] = _json("#/components/schemas/Error", words)
    return {
        "post": {
            "summary": f"{source} events ({events}) into the pipeline, durably",
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"oneOf": [_EVENT_BODY, {"type": "array", "minItems": 1, "items": _EVENT_BODY}]}
                    }
                },
            },
            "responses": responses,
        }
    }


def openapi_document(server_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Inventory center views",
            "version": "1.0.0",
            "description": "Views of the inventory center's tables, and the TMS/WMS webhooks.",
        },
        "servers": [{"url": server_url}],
        "paths": {
            "/inventory/{sku}/{warehouseCode}": {
                "get": {
                    "summary": "One position",
                    "parameters": [
                        {"name": "sku", "in": "path", "required": True, "schema": _CODE, "example": "SKU001"},
                        {
                            "name": "warehouseCode",
                            "in": "path",
                            "required": True,
                            "schema": {**_CODE, "maxLength": 32},
                            "example": "WH001",
                        },
                    ],
                    "responses": {"200": _json("#/components/schemas/Position", "The position"), **_errors(400, 404)},
                }
            },
            "/inventory/{sku}": {
                "get": {
                    "summary": "Every warehouse of a SKU and the network totals",
                    "parameters": [
                        {"name": "sku", "in": "path", "required": True, "schema": _CODE, "example": "SKU001"}
                    ],
                    "responses": {"200": _json("#/components/schemas/SkuInventory", "The SKU"), **_errors(400, 404)},
                }
            },
            "/inventory": {
                "get": {
                    "summary": "Availability of many SKUs at once (a cart)",
                    "parameters": [
                        {
                            "name": "skus",
                            "in": "query",
                            "required": True,
                            "description": "1 to 200 comma-separated SKU codes",
                            "schema": {"type": "string", "pattern": _CODE_LIST},
                            "example": "SKU001,SKU002",
                        }
                    ],
                    "responses": {
                        "200": _json("#/components/schemas/Batch", "Found SKUs and the missing ones"),
                        **_errors(400, 502, 503),
                    },
                }
            },
            "/orders/{orderNo}": {
                "get": {
                    "summary": "An order: status, timeline and per-line allocation",
                    "parameters": [
                        {
                            "name": "orderNo",
                            "in": "path",
                            "required": True,
                            "schema": _CODE,
                            "example": "OMS202511220001",
                        }
                    ],
                    "responses": {"200": _json("#/components/schemas/Order", "The order"), **_errors(400, 404)},
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness: 200 while the process serves; says why it is not ready "
                    "(notReadyBecause) and whether the broker answers",
                    "responses": {
                        "200": {"description": "Alive", "content": {"application/json": {"schema": {"type": "object"}}}}
                    },
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: the broker answers, partitions are assigned, no rebalance, tables recovered",
                    "responses": {
                        "200": {
                            "description": "Ready",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "503": {
                            "description": "Not ready; notReadyBecause lists why",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text (OpenMetrics when the Accept header asks for it)",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/dead-letters/latest": {
                "get": {
                    "summary": "The newest dead letters this worker wrote since it started, newest first",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "description": "At most this many (default: every one kept, dead_letters_shown)",
                            "schema": {"type": "string", "pattern": "^[0-9]+$"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "Dead letters (where the record was, errorType, error) and how many "
                            "were written since start",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "400": {
                            "description": "limit is not a whole number",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                        },
                    },
                }
            },
            "/webhooks/tms": _webhook(
                "TMS (carrier)", "PickedUp, InTransit, OutForDelivery, Delivered, DeliveryFailed, ReturnPickedUp"
            ),
            "/webhooks/wms": _webhook("WMS (warehouse)", "OrderShipped and the stock movements"),
            "/webhooks/erp": _webhook("ERP (inventory planner)", "ReorderPointSet"),
        },
        "components": {
            "schemas": {
                "Position": POSITION,
                "SkuInventory": SKU_INVENTORY,
                "Batch": BATCH,
                "Order": ORDER,
                "Error": ERROR,
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
