"""The event catalogue in the API documentation: every event type with its payload schema.

OpenAPI 3.1 ``webhooks`` describe requests the store sends: each declared event type is
one, a CloudEvents 1.0 envelope (as webhooks and ``/admin/events`` carry it, and as the
live stream's ``data``) whose ``data`` is the type's payload model. Webhook subscribers,
live-stream clients and anyone reading ``/admin/events`` write their client from it.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from mercato.bus.events import EVENT_TYPES, SPEC_VERSION

# Payload schemas live beside the API's own, under a prefix that keeps the names apart.
PREFIX = "Event"
REF = "#/components/schemas/" + PREFIX + "{model}"


def _envelope(name: str, source: str, data_ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"],
        "properties": {
            "specversion": {"const": SPEC_VERSION},
            "id": {"type": "string", "format": "uuid"},
            "source": {"const": f"mercato/{source}"},
            "type": {"const": name},
            "subject": {"type": "string", "description": "The resource the event is about (its id)."},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "sequence": {"type": "string", "pattern": "^[0-9]+$",
                         "description": "CloudEvents sequence extension: the store's event number."},
            "data": data_ref,
        },
    }


def document_events(schema: dict[str, Any]) -> None:
    """Add every declared event type to ``schema`` (``webhooks`` and component schemas)."""
    declared = [EVENT_TYPES[name] for name in sorted(EVENT_TYPES)]
    refs, definitions = models_json_schema([(spec.model, "serialization") for spec in declared],
                                           ref_template=REF)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update({PREFIX + name: definition for name, definition in definitions.get("$defs", {}).items()})
    webhooks: dict[str, Any] = schema.setdefault("webhooks", {})
    for spec in declared:
        data_ref = refs[(spec.model, "serialization")]
        webhooks[spec.name] = {"post": {
            "summary": spec.name,
            "description": f"{spec.description}\n\nEmitted by the `{spec.source}` module as a CloudEvent: "
                           "sent to webhooks subscribed to the type, listed by `GET /api/v1/admin/events`, "
                           "and carried by the live stream when it concerns the signed-in user.",
            "tags": ["events"],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _envelope(spec.name, spec.source, data_ref)}}},
            "responses": {"2XX": {"description": "Received (a webhook endpoint answers any 2xx)."}},
        }}
