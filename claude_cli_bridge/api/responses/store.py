"""Stored responses, for ``previous_response_id`` and ``GET``/``DELETE /v1/responses/{id}``.

Each entry keeps the response object and the whole conversation it ended (every message up
to and including its answer, as neutral messages) plus the system/developer input texts, so
a follow-up that sends only new items continues the full history. Bounded: at most
``max_entries`` and ``max_bytes`` (their JSON size: each entry holds its whole conversation,
images included, so a long conversation's entries grow), the least recently used go first.
In memory, and with a directory also on disk (one private JSON file each), so a restart keeps
them. A request with ``store: false`` is never put here.

Each entry belongs to the tenant (client key) whose request made it: ``get`` and ``delete``
with another tenant find nothing, exactly as for an id that does not exist (a 404, which says
nothing about other keys' responses).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.messages import Block, ImageBlock, Message, TextBlock, ToolResultBlock, ToolUseBlock, canonical_json
from ...settings import Settings

log = logging.getLogger(__name__)
_ID = re.compile(r"^resp_[A-Za-z0-9]{1,64}$")


@dataclass(frozen=True)
class StoredResponse:
    response: dict[str, Any]
    messages: tuple[Message, ...]
    system_inputs: tuple[str, ...]
    tenant: str = ""

    @property
    def id(self) -> str:
        return str(self.response["id"])

    def to_json(self) -> str:
        return json.dumps(
            {
                "response": self.response,
                "messages": [message.to_anthropic() for message in self.messages],
                "system_inputs": list(self.system_inputs),
                "tenant": self.tenant,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> StoredResponse:
        data = json.loads(text)
        return cls(
            data["response"],
            tuple(_message(m) for m in data["messages"]),
            tuple(data.get("system_inputs") or ()),
            str(data.get("tenant") or ""),
        )


class ResponseStore:
    @classmethod
    def from_settings(cls, settings: Settings) -> ResponseStore:
        """The store the settings ask for (in memory; also on disk with RESPONSES_STORE_PERSIST)."""
        directory = settings.state_dir / "responses" if settings.responses_store_persist else None
        return cls(settings.responses_store_max, directory, settings.responses_store_max_mb * 1024 * 1024)

    def __init__(self, max_entries: int, directory: Path | None = None, max_bytes: int = 256 * 1024 * 1024):
        self.max_entries = max(0, max_entries)
        self.max_bytes = max(0, max_bytes)
        self.directory = directory
        self._entries: OrderedDict[str, StoredResponse | None] = OrderedDict()  # None: on disk only
        self._sizes: dict[str, int] = {}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            files = sorted(directory.glob("resp_*.json"), key=lambda path: path.stat().st_mtime)
            for path in files:
                self._entries[path.stem] = None
                self._sizes[path.stem] = path.stat().st_size
            self._trim()

    @property
    def total_bytes(self) -> int:
        return sum(self._sizes.values())

    def put(self, entry: StoredResponse) -> None:
        text = entry.to_json()
        if self.max_entries == 0 or len(text) > self.max_bytes:
            return
        self._entries[entry.id] = entry
        self._entries.move_to_end(entry.id)
        self._sizes[entry.id] = len(text)
        if self.directory is not None:
            path = self._path(entry.id)
            temporary = path.with_suffix(".tmp")
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            temporary.replace(path)
        self._trim()

    def get(self, response_id: str, tenant: str = "") -> StoredResponse | None:
        """The stored response, if it exists and belongs to ``tenant``."""
        if not _ID.match(response_id) or response_id not in self._entries:
            return None
        entry = self._entries[response_id]
        if entry is None and self.directory is not None:
            try:
                entry = StoredResponse.from_json(self._path(response_id).read_text(encoding="utf-8"))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("stored response %s is unreadable (%s); forgetting it", response_id, exc)
                self._remove(response_id)
                return None
            self._entries[response_id] = entry
        if entry is None or entry.tenant != tenant:
            return None
        self._entries.move_to_end(response_id)
        return entry

    def delete(self, response_id: str, tenant: str = "") -> bool:
        """Remove a response of ``tenant``; False if there is none (or it is another's)."""
        if self.get(response_id, tenant) is None:
            return False
        self._remove(response_id)
        return True

    def _remove(self, response_id: str) -> None:
        del self._entries[response_id]
        self._sizes.pop(response_id, None)
        if self.directory is not None:
            with contextlib.suppress(OSError):
                self._path(response_id).unlink()

    def __len__(self) -> int:
        return len(self._entries)

    def _trim(self) -> None:
        while self._entries and (len(self._entries) > self.max_entries or self.total_bytes > self.max_bytes):
            self._remove(next(iter(self._entries)))

    def _path(self, response_id: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{response_id}.json"


def _message(data: dict[str, Any]) -> Message:
    return Message(data["role"], tuple(_block(block) for block in data["content"]))


def _block(data: dict[str, Any]) -> Block:
    kind = data["type"]
    if kind == "text":
        return TextBlock(data["text"])
    if kind == "image":
        return ImageBlock(data["source"]["media_type"], data["source"]["data"])
    if kind == "tool_use":
        return ToolUseBlock(data["id"], data["name"], canonical_json(data["input"]))
    if kind == "tool_result":
        parts = tuple(_block(part) for part in data.get("content") or [])
        return ToolResultBlock(data["tool_use_id"], parts, bool(data.get("is_error")))  # type: ignore[arg-type]
    raise ValueError(f"unknown block type {kind!r}")
