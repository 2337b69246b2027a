"""The events the policies module emits (their ``data``; see ``mercato.bus.events``)."""

from __future__ import annotations

from typing import Any

from mercato.bus.events import EventData, event_type


@event_type("config.changed", source="policies")
class ConfigChanged(EventData):
    """Store policies changed: ``{setting: {before, after}}``."""
    changed: dict[str, dict[str, Any]]
