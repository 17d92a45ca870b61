"""Messages and content blocks, in the shape the Anthropic Messages API gives them.

Every API translates its requests into these; the CLI driver writes them to the CLI as
Anthropic blocks. Blocks are frozen so a history can be compared and hashed: conversation
tracking relies on that to know whether a held CLI process holds exactly a request's history.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class TextBlock:
    text: str

    def to_anthropic(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


@dataclass(frozen=True)
class ImageBlock:
    """An image as base64 with its media type (image/png, image/jpeg, image/gif, image/webp)."""

    media_type: str
    data: str

    def to_anthropic(self) -> dict[str, Any]:
        return {"type": "image", "source": {"type": "base64", "media_type": self.media_type, "data": self.data}}


@dataclass(frozen=True)
class DocumentBlock:
    """A document the model reads natively: a PDF (``application/pdf``, base64 ``data``) or
    plain text (``text/plain``, the text itself as ``data``). ``title`` is the file name the
    caller gave, if any. It reaches the upstream as an Anthropic ``document`` block."""

    media_type: str
    data: str
    title: str | None = None

    def to_anthropic(self) -> dict[str, Any]:
        kind = "text" if self.media_type == "text/plain" else "base64"
        block: dict[str, Any] = {
            "type": "document",
            "source": {"type": kind, "media_type": self.media_type, "data": self.data},
        }
        if self.title:
            block["title"] = self.title
        return block


@dataclass(frozen=True)
class ThinkingBlock:
    """The model's own signed thinking, kept inside the bridge (never from a caller, never
    shown as text): the upstream wants the thinking that preceded a tool call back, signature
    and all, when the conversation continues after the call. ``redacted`` blocks carry only
    the upstream's opaque ``data`` (kept in ``signature``). ``model`` is the model that signed
    it: signatures hold for that model only, and the CLI drops thinking of any other."""

    thinking: str
    signature: str
    redacted: bool = False
    model: str = ""

    def to_anthropic(self) -> dict[str, Any]:
        if self.redacted:
            return {"type": "redacted_thinking", "data": self.signature}
        return {"type": "thinking", "thinking": self.thinking, "signature": self.signature}


@dataclass(frozen=True)
class ToolUseBlock:
    """A tool call the assistant made earlier; ``input_json`` is the canonical JSON of its input."""

    id: str
    name: str
    input_json: str

    @property
    def input(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.input_json)  # canonical JSON of an object
        return value

    def to_anthropic(self) -> dict[str, Any]:
        return {"type": "tool_use", "id": self.id, "name": self.name, "input": self.input}


@dataclass(frozen=True)
class ToolResultBlock:
    """The caller's result for a tool call, sent back in a user turn."""

    tool_use_id: str
    content: tuple[TextBlock | ImageBlock, ...]
    is_error: bool = False

    def to_anthropic(self) -> dict[str, Any]:
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": self.tool_use_id,
            "content": [part.to_anthropic() for part in self.content],
        }
        if self.is_error:
            block["is_error"] = True
        return block


Block = TextBlock | ImageBlock | DocumentBlock | ThinkingBlock | ToolUseBlock | ToolResultBlock


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal inputs give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Message:
    role: Role
    content: tuple[Block, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        return "".join(block.text for block in self.content if isinstance(block, TextBlock))

    def to_anthropic(self) -> dict[str, Any]:
        return {"role": self.role, "content": [block.to_anthropic() for block in self.content]}

    def match_key(self) -> tuple[Any, ...]:
        """What must be equal for two messages to count as the same turn.

        Clients echo an assistant answer back with its text joined, sometimes trimmed, and the
        tool-call ids they were given; split text blocks and surrounding white space are noise,
        and so is the model's thinking, which clients never send back.
        """
        texts = self.text.strip()
        others = tuple(block for block in self.content if not isinstance(block, (TextBlock, ThinkingBlock)))
        return (self.role, texts, others)


def merge_consecutive(messages: list[Message]) -> list[Message]:
    """Join runs of same-role messages into one, as the Messages API requires alternation.

    OpenAI clients send several tool results as separate ``tool`` messages, or a user message
    right after them; Anthropic wants them in one user turn. The CLI merges them too.
    """
    merged: list[Message] = []
    for message in messages:
        if merged and merged[-1].role == message.role:
            merged[-1] = Message(message.role, merged[-1].content + message.content)
        else:
            merged.append(message)
    return merged


def history_fingerprint(messages: tuple[Message, ...] | list[Message]) -> str:
    """A short stable hash of a history, by the messages' match keys."""
    digest = hashlib.sha256()
    for message in messages:
        digest.update(repr(message.match_key()).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:32]
