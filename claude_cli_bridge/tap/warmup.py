"""Spares warmed at no quota: the warm-up exchange, answered by the tap and removed later (pure).

A spare's first turn costs the CLI about three times a later one (module loading, first-use
set-up), so the launcher has each spare run one turn right after launch (``cli.launch``):
the prompt ``warmup_text(marker)``, with a per-run random marker only the bridge knows. The
tap answers that request itself with ``warmup_response`` (a short reply in the upstream's
own format) and never forwards it. Every later request of that process carries the exchange
at its start; ``strip_warmup`` turns such a body into the one a fresh process would have
sent for the caller's conversation, or raises ``WarmupMismatch`` when the body is not what
the tap expects (then nothing is forwarded).

The CLI (2.1.332) sends, for a fresh process's first turn,
``[user(caller), system(notes, cache mark)]``, and after the warm-up
``[user(warm-up), system(notes), assistant(reply), user(caller, cache mark)]``; older CLIs put
their ``<system-reminder>`` blocks inside the first user message instead. Both are handled:
the reminders and the CLI's system messages stay where a fresh process has them, and the
cache mark stays on the last message.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

WARMUP_REPLY = "OK"
REMINDER = "<system-reminder>"
# The CLI's billing header ends its version with 3 hex digits derived from its first user
# message: sha256(salt + that text's characters 4, 7 and 20 + version)[:3] (observed with
# 2.1.277 and 2.1.332: a fresh process's header matches it). A warmed process derived them
# from the warm-up; the tap recomputes them from the caller's first message.
BILLING = re.compile(r"(cc_version=)([^;\s]+)\.([0-9a-f]{3})(;)")
FINGERPRINT_SALT = "59cf53e54c78"


class WarmupMismatch(ValueError):
    """A warmed process's request does not start with the warm-up exchange the tap expects."""


def warmup_text(marker: str) -> str:
    return f"Bridge warm-up {marker}: reply with OK."


def is_warmup_request(body: dict[str, Any], text: str) -> bool:
    """The warm-up turn's request: no assistant turn yet, the last user message is ``text``."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return False
    if any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        return False
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return len(users) == 1 and own_texts(users[0].get("content")) == [text]


def warmup_response(body: dict[str, Any]) -> tuple[bytes, bytes]:
    """(content type, body) of the tap's answer to the warm-up: the upstream's SSE events for
    a streamed request, else one message object; no tokens are counted (none were spent)."""
    message = {
        "id": "msg_bridge_warmup_" + uuid.uuid4().hex[:12],
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    if not body.get("stream"):
        whole = {**message, "content": [{"type": "text", "text": WARMUP_REPLY}], "stop_reason": "end_turn"}
        return b"application/json", json.dumps(whole).encode()
    events = [
        ("message_start", {"type": "message_start", "message": message}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": WARMUP_REPLY}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 0},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"text/event-stream", b"".join(f"event: {e}\ndata: {json.dumps(d)}\n\n".encode() for e, d in events)


def strip_warmup(body: dict[str, Any], text: str) -> None:
    """Remove the warm-up exchange from a warmed process's request body, in place.

    Raises WarmupMismatch unless the messages start with the warm-up user message (``text``
    plus the CLI's own reminders), the CLI's system messages, the tap's reply, then a user
    message (the caller's first)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise WarmupMismatch("no messages")
    first = messages[0]
    blocks = _blocks(first.get("content"))
    if first.get("role") != "user" or own_texts(blocks) != [text]:
        raise WarmupMismatch("the first message is not the warm-up")
    reminders = [b for b in blocks if not _is_text(b, text)]
    reply_at = next((n for n, m in enumerate(messages) if m.get("role") == "assistant"), None)
    if reply_at is None or [_plain(b) for b in _blocks(messages[reply_at].get("content"))] != [WARMUP_REPLY]:
        raise WarmupMismatch("the warm-up reply is not the tap's")
    between = messages[1:reply_at]
    if any(m.get("role") != "system" for m in between):
        raise WarmupMismatch("unexpected messages inside the warm-up exchange")
    rest = messages[reply_at + 1 :]
    if not rest or rest[0].get("role") != "user":
        raise WarmupMismatch("no caller message after the warm-up")
    caller = {**rest[0], "content": [*reminders, *_blocks(rest[0].get("content"))]} if reminders else rest[0]
    out = [caller, *between, *rest[1:]]
    if len(rest) == 1 and between:
        # The caller's message was last and carried the CLI's cache mark; a fresh process
        # puts it on its last message, the CLI's system message after the caller's.
        out = _move_cache_mark(out)
    body["messages"] = out
    _refingerprint(body, text, first_text(caller))
    if text in json.dumps(body, ensure_ascii=False):
        raise WarmupMismatch("the warm-up marker is still in the request")


def fingerprint(text: str, version: str) -> str:
    chars = "".join(text[i] if i < len(text) else "0" for i in (4, 7, 20))
    return hashlib.sha256(f"{FINGERPRINT_SALT}{chars}{version}".encode()).hexdigest()[:3]


def _refingerprint(body: dict[str, Any], warm: str, caller: str) -> None:
    """Give the billing header the digits a fresh process computes from the caller's first
    message, where it carries the ones of the warm-up (left alone otherwise)."""
    system = body.get("system")
    if not isinstance(system, list):
        return
    for n, block in enumerate(system):
        text = _plain(block)
        if text is None or not text.startswith("x-anthropic-billing-header:"):
            continue

        def swap(match: re.Match[str]) -> str:
            version, digits = match.group(2), match.group(3)
            if digits != fingerprint(warm, version):
                return match.group(0)
            return f"{match.group(1)}{version}.{fingerprint(caller, version)}{match.group(4)}"

        system[n] = {**block, "text": BILLING.sub(swap, text)}


def first_text(message: dict[str, Any]) -> str:
    for block in _blocks(message.get("content")):
        plain = _plain(block)
        if plain is not None and not plain.startswith(REMINDER):
            return plain
    return ""


def _move_cache_mark(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    caller, last = messages[0], messages[-1]
    blocks = _blocks(caller.get("content"))
    marks = [n for n, b in enumerate(blocks) if isinstance(b, dict) and "cache_control" in b]
    if not marks or any(isinstance(b, dict) and "cache_control" in b for b in _blocks(last.get("content"))):
        return messages
    mark = blocks[marks[-1]]["cache_control"]
    unmarked = list(blocks)
    unmarked[marks[-1]] = {k: v for k, v in blocks[marks[-1]].items() if k != "cache_control"}
    last_blocks = _blocks(last.get("content"))
    if not last_blocks or not isinstance(last_blocks[-1], dict):
        return messages
    last_blocks = [*last_blocks[:-1], {**last_blocks[-1], "cache_control": mark}]
    return [{**caller, "content": unmarked}, *messages[1:-1], {**last, "content": last_blocks}]


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content) if isinstance(content, list) else []


def _plain(block: Any) -> str | None:
    return block.get("text") if isinstance(block, dict) and block.get("type") == "text" else None


def _is_text(block: Any, text: str) -> bool:
    return _plain(block) == text


def own_texts(content: Any) -> list[str | None]:
    """A user message's blocks other than the CLI's reminders (None for non-text blocks)."""
    out: list[str | None] = []
    for block in _blocks(content):
        plain = _plain(block)
        if plain is not None and plain.startswith(REMINDER):
            continue
        out.append(plain)
    return out
