"""What the tap changes in a request body before forwarding it (pure functions).

Only one thing today: the CLI's environment note. Every conversation carries a block starting
``# Environment`` ("You have been invoked in the following environment: ...": working
directory, git, platform, shell, OS version, and instructions for a coding agent about
downloaded files and curl), as a ``role: "system"`` message (CLI 2.1.332) or a
``<system-reminder>`` text block, after tool results inside the newest user message on a
conversation rebuilt from history (CLI_NOTES.md). ``strip_environment_note`` removes that
paragraph and nothing else: the model line, the date, the caller's content, the identity line
and the billing header stay as the CLI sent them.
"""

from __future__ import annotations

import json
import re
from typing import Any

ENV_HEADING = "# Environment\n"
REMINDER_OPEN = "<system-reminder>\n"
REMINDER_CLOSE = "</system-reminder>"


def cut_environment_note(text: str) -> str | None:
    """``text`` without its environment paragraph (from ``# Environment`` to the first blank
    line, or to the end of the reminder); None when it has none. An empty result means the
    whole text was the note."""
    start = _note_start(text)
    if start is None:
        return None
    end = text.find("\n\n", start)
    closing = text.find(REMINDER_CLOSE, start)
    if end == -1 or (closing != -1 and closing < end):
        end = closing if closing != -1 else len(text)
        rest = text[:start] + text[end:]
    else:
        rest = text[:start] + text[end + 2 :]
    if rest.strip() in ("", REMINDER_OPEN + REMINDER_CLOSE, REMINDER_OPEN.strip() + REMINDER_CLOSE):
        return ""
    return rest


def _note_start(text: str) -> int | None:
    if text.startswith(ENV_HEADING):
        return 0
    if text.startswith(REMINDER_OPEN + ENV_HEADING):
        return len(REMINDER_OPEN)
    return None


def strip_environment_note(body: dict[str, Any]) -> bool:
    """Remove the environment note from a Messages request body in place; True if found.

    Only text that *starts* with the heading is the note: a string content or text block of
    the CLI's own ``system`` messages, or, in other messages, a text block wrapped in
    ``<system-reminder>`` (caller text reaching the CLI is never so wrapped unless the caller
    wrote the wrapper and the heading themselves, which the tap cannot tell apart).
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    found = False
    kept = []
    for original in messages:
        message = original
        content = message.get("content") if isinstance(message, dict) else None
        injected = isinstance(message, dict) and message.get("role") == "system"
        if isinstance(content, str) and injected:
            rest, cut = _cut_text(original, "content")
            found = found or cut
            if rest is None:
                continue  # the note was all of it
            message = rest
        elif isinstance(content, list):
            blocks, cut = _cut_blocks(content, injected)
            if cut:
                found = True
                if not blocks:
                    continue
                message = {**original, "content": blocks}
        kept.append(message)
    if found:
        body["messages"] = kept
    return found


def _cut_blocks(blocks: list[Any], injected: bool) -> tuple[list[Any], bool]:
    """A message's blocks without the note. In a user message the CLI's reminder is a text
    block wrapped in ``<system-reminder>`` that follows the caller's blocks (after tool
    results); a bare ``# Environment`` block is cut only from the CLI's own system messages."""
    out: list[Any] = []
    cut = False
    for original in blocks:
        block = original
        inner = block.get("content") if isinstance(block, dict) and block.get("type") == "tool_result" else None
        if isinstance(inner, list):
            # A resumed conversation's newest tool result carries the reminder inside it (CLI_NOTES).
            kept, inner_cut = _cut_blocks(inner, False)
            if inner_cut:
                cut = True
                block = {**original, "content": kept}
        text = block.get("text") if isinstance(block, dict) and block.get("type") == "text" else None
        if isinstance(text, str) and (injected or text.startswith(REMINDER_OPEN)):
            rest, text_cut = _cut_text(block, "text")
            cut = cut or text_cut
            if rest is None:
                continue  # the note was all of it
            block = rest
        out.append(block)
    if cut and out and not any(isinstance(b, dict) and "cache_control" in b for b in out):
        # The note's block may have carried the CLI's cache breakpoint: keep it on the last block.
        marked = [b for b in blocks if isinstance(b, dict) and "cache_control" in b]
        if marked and isinstance(out[-1], dict):
            out[-1] = {**out[-1], "cache_control": marked[-1]["cache_control"]}
    return out, cut


def _cut_text(item: dict[str, Any], field: str) -> tuple[dict[str, Any] | None, bool]:
    """``item`` with the note cut from its text ``field`` (None when the note was all of it),
    and whether a note was cut."""
    rest = cut_environment_note(item[field])
    if rest is None:
        return item, False
    return ({**item, field: rest} if rest else None), True


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def encode(body: dict[str, Any]) -> bytes:
    """JSON the way the CLI writes it (compact, UTF-8 unescaped, as JavaScript's JSON.stringify).

    A lone surrogate (half an emoji a client cut, which JSON.stringify writes as ``\\udXXX``)
    is written as that escape too: UTF-8 cannot hold it. Pairs were joined by ``json.loads``,
    so every surrogate left in a string is a lone one.
    """
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    if _LONE_SURROGATE.search(text):
        text = _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text.encode()
