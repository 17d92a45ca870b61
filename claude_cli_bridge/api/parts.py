"""Translator parts every API shares: media limits, the system-prompt join, a tool call's
input and a caller's tool definition. Pure, like the translators that use them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..core.messages import ToolUseBlock, canonical_json
from ..core.turn import ToolSpec

DEFAULT_TOOL_SCHEMA: dict[str, Any] = {"type": "object"}
"""A tool defined without parameters takes an (empty) object, as the APIs document."""


@dataclass(frozen=True)
class MediaLimits:
    """MAX_IMAGE_BYTES and MAX_DOCUMENT_BYTES, as every translator takes them."""

    image_bytes: int
    document_bytes: int

    @classmethod
    def of(cls, max_image_bytes: int, max_document_bytes: int | None = None) -> MediaLimits:
        """One limit for both (documents default to the image limit)."""
        return cls(max_image_bytes, max_document_bytes or max_image_bytes)


def join_system(parts: Iterable[str | None]) -> str | None:
    """The system prompt from its parts in order, blank ones left out; None when nothing is left."""
    return "\n\n".join(part for part in parts if part) or None


def tool_input(value: Any) -> dict[str, Any]:
    """A tool call's input as the object the upstream requires: a non-object (``"[1]"``,
    ``"3"``) is kept whole under ``value`` rather than dropped."""
    return value if isinstance(value, dict) else {"value": value}


def tool_use(call_id: str, name: str, value: Any) -> ToolUseBlock:
    """An earlier tool call in a history, its input in canonical form."""
    return ToolUseBlock(call_id, name, canonical_json(tool_input(value)))


def tool_spec(name: str, description: str | None, schema: dict[str, Any] | None) -> ToolSpec:
    """A caller's tool; one without parameters takes ``DEFAULT_TOOL_SCHEMA``."""
    return ToolSpec(name, description or "", schema or DEFAULT_TOOL_SCHEMA)


def new_id(prefix: str) -> str:
    """A fresh object id in the APIs' form: ``prefix`` and 24 hex digits."""
    return prefix + uuid.uuid4().hex[:24]
