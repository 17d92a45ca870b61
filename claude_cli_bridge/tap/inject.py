"""Turns served by any warm worker: the tap writes the caller's conversation into a worker's
upstream request (pure functions).

A worker is a CLI process that holds no caller conversation. For each turn the bridge writes
a one-line placeholder prompt (``Assignment.marker``, random per turn) to the worker and
gives the tap the turn's ``Assignment``: the caller's messages, system prompt, tools and tool
choice. ``splice`` then makes the worker's request body the one a fresh CLI process resumed
from the caller's history would have sent (CLI 2.1.332, read through the tap; docs/cli.md
"Workers"):

- a new conversation (one user message): ``[user, system(notes)]``, the notes message
  carrying the CLI's extra keys (``output_config``);
- a longer history: ``[user, system([] + extra keys), assistant, ..., user, system(notes)]``;
- the notes are the CLI's own ``role: "system"`` message (model line, date; the environment
  paragraph is removed afterwards by ``rewrite``), as the worker sent it;
- one cache mark, on the last block of the last message (a string content becomes one text
  block to carry it), as the CLI places it;
- ``system``: the worker's billing header and identity block, then the caller's system prompt
  as a block of its own with a cache mark (what ``--system-prompt`` gives); the billing
  header's three digits recomputed from the caller's first user message (``warmup.fingerprint``);
- ``tools``: the worker's own (none, or ``StructuredOutput``) then the caller's, under the
  caller's own names where those are valid upstream names (``cli.client_tools.offered_names``);
- ``tool_choice`` as the caller asked.

Everything else (model, thinking, effort, max_tokens, metadata, betas) is the worker's: those
are what the worker was launched with, and the pool only gives a turn to a worker launched
with the turn's settings.

Within one turn the CLI may ask again: after a call of the caller's tool (which the worker
does not have) it sends the model an error result, "No such tool available". That request is
never forwarded: ``splice`` returns ``ANSWER_LOCALLY`` and the tap answers it itself, at no
cost, so the turn ends with the caller's calls. Other in-turn requests (the CLI's own
``StructuredOutput`` tool) keep what the worker added after the placeholder.

Anything that does not have the shape above raises ``InjectMismatch``: the tap refuses the
request (a 502 naming why) rather than forward a body it could not make faithful.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Final

from .warmup import BILLING, REMINDER, fingerprint, first_text, own_texts, warmup_response

EPHEMERAL: Final = {"type": "ephemeral"}
ANSWER_LOCALLY: Final = "answer-locally"
IDENTITY_PREFIX = "You are a Claude agent"
#: Private key on a thinking block of ``Assignment.messages``: the model that signed it. The
#: CLI sends a resumed conversation's thinking only when it was signed by the model it runs.
SIGNED_BY = "_signed_by"


class InjectMismatch(ValueError):
    """The worker's request is not what ``splice`` knows how to make faithful; says why."""


@dataclass(frozen=True)
class Assignment:
    """One turn of a caller's conversation, for the worker whose requests carry it.

    ``messages`` are the caller's messages in Anthropic form (tool calls under their offered
    names), ending with a user message; ``tools`` the caller's tools as the upstream takes
    them; ``caller_tools`` their offered names (a request answering calls of these is the
    tap's to answer).
    """

    marker: str
    messages: tuple[dict[str, Any], ...]
    system: str | None = None
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: dict[str, Any] | None = None
    caller_tools: frozenset[str] = field(default_factory=frozenset)


def splice(body: dict[str, Any], assignment: Assignment) -> dict[str, Any] | str:
    """The body to forward for a worker's request made during ``assignment``'s turn, or
    ``ANSWER_LOCALLY`` for the CLI's follow-up after a call of the caller's tools. ``body`` is
    not changed. Raises InjectMismatch."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise InjectMismatch("the request has no messages")
    at = _marker_index(messages, assignment.marker)
    where, notes = _notes(messages)
    # (On a worker's first turn the notes follow the placeholder, as they follow a new
    # conversation's first message.)
    tail = [copy.deepcopy(m) for n, m in enumerate(messages[at + 1 :], at + 1) if n != where]
    if _answers_caller_calls(tail, assignment.caller_tools):
        return ANSWER_LOCALLY
    _check_tail(tail)
    _check_cache_marks(messages)
    if not assignment.messages or assignment.messages[-1].get("role") != "user":
        raise InjectMismatch("the caller's conversation does not end with a user message")
    out = dict(body)
    out["messages"] = _conversation(assignment.messages, notes, tail, str(body.get("model", "")))
    out["system"] = _system(body.get("system"), assignment, messages)
    worker_tools = body.get("tools")
    if worker_tools is not None and not isinstance(worker_tools, list):
        raise InjectMismatch("the worker's tools are not a list")
    if worker_tools is not None or assignment.tools:
        out["tools"] = [*(worker_tools or []), *copy.deepcopy(list(assignment.tools))]
    if assignment.tool_choice is not None:
        out["tool_choice"] = dict(assignment.tool_choice)
    return out


def canned_answer(body: dict[str, Any]) -> tuple[bytes, bytes]:
    """The tap's own answer to a worker's follow-up after the caller's tool calls: a short
    text (an empty answer makes the CLI ask again), no tokens counted. The bridge never
    passes it on: the turn's answer ended with the calls."""
    return warmup_response(body)  # the same minimal answer as the warm-up's


# -- the parts ---------------------------------------------------------------------------------
def _marker_index(messages: list[dict[str, Any]], marker: str) -> int:
    for n in range(len(messages) - 1, -1, -1):
        if messages[n].get("role") == "user" and own_texts(messages[n].get("content")) == [marker]:
            return n
    raise InjectMismatch("the turn's placeholder prompt is not in the request")


Notes = tuple[str, dict[str, Any]] | list[dict[str, Any]]


def _notes(messages: list[dict[str, Any]]) -> tuple[int | None, Notes]:
    """Where the CLI's notes of the worker's conversation are and what they hold: (index,
    (text, extra keys)) of its first system message with text, or, for models the CLI gives
    reminders instead (older model ids), (None, the ``<system-reminder>`` blocks of the first
    user message)."""
    first_user = next((m for m in messages if m.get("role") == "user"), None)
    content = first_user.get("content") if first_user is not None else None
    reminders = [
        {k: copy.deepcopy(v) for k, v in block.items() if k != "cache_control"}
        for block in (content if isinstance(content, list) else [])
        if isinstance(block, dict) and block.get("type") == "text" and str(block.get("text", "")).startswith(REMINDER)
    ]
    if reminders and not any(m.get("role") == "system" for m in messages):
        return None, reminders
    for n, message in enumerate(messages):
        if message.get("role") != "system":
            continue
        content = message.get("content")
        if isinstance(content, list):
            texts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
            if len(texts) != len(content) or not all(isinstance(t, str) for t in texts):
                raise InjectMismatch("the CLI's notes message holds other than text")
            content = "".join(t for t in texts if isinstance(t, str))
        if not isinstance(content, str) or not content:
            continue
        extra = {k: copy.deepcopy(v) for k, v in message.items() if k not in ("role", "content")}
        return n, (content, extra)
    raise InjectMismatch("the CLI's notes message is not in the request")


def _answers_caller_calls(tail: list[dict[str, Any]], caller_tools: frozenset[str]) -> bool:
    """The tail ends with the CLI's results for calls of the caller's tools."""
    called = {
        block.get("id")
        for message in tail
        if message.get("role") == "assistant" and isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("name") in caller_tools
    }
    if not called or not tail or tail[-1].get("role") != "user":
        return False
    content = tail[-1].get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" and b.get("tool_use_id") in called for b in content
    )


def _check_tail(tail: list[dict[str, Any]]) -> None:
    """What the worker added during this turn: the model's answers and the CLI's own tool
    results or prompts (its structured-output reminder), alternating. Caller text never passes
    through a worker, so these are the CLI's; anything but text and tool results is refused."""
    for n, message in enumerate(tail):
        role = "assistant" if n % 2 == 0 else "user"
        if message.get("role") != role:
            raise InjectMismatch(f"unexpected {message.get('role')!r} message after the turn's prompt")
        content = message.get("content")
        if role == "user" and not isinstance(content, str):
            kinds = {b.get("type") for b in content} if isinstance(content, list) else {None}
            if not kinds or not kinds <= {"text", "tool_result"}:
                raise InjectMismatch("a user message after the turn's prompt holds other than text or tool results")


def _check_cache_marks(messages: list[dict[str, Any]]) -> None:
    """The CLI marks exactly one block, the last of its last message; anything else is a
    shape this code does not know."""
    marks = [
        (n, k)
        for n, message in enumerate(messages)
        if isinstance(message.get("content"), list)
        for k, block in enumerate(message["content"])
        if isinstance(block, dict) and "cache_control" in block
    ]
    last = len(messages) - 1
    if marks and marks != [(last, len(messages[last]["content"]) - 1)]:
        raise InjectMismatch("the CLI's cache marks are not where it puts them")


def _conversation(
    caller: tuple[dict[str, Any], ...], notes: Notes, tail: list[dict[str, Any]], model: str
) -> list[dict[str, Any]]:
    messages = [_without_unsigned_thinking(copy.deepcopy(m), model) for m in caller]
    for message in (*messages, *tail):
        _unmark(message)
    if isinstance(notes, list):
        # Reminders lead the newest user message, as a resumed process puts them; after tool
        # results they follow those (a resumed process writes them inside the last result).
        last = messages[-1]
        content = last.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        results = [n for n, b in enumerate(blocks) if isinstance(b, dict) and b.get("type") == "tool_result"]
        at = results[-1] + 1 if results else 0
        last["content"] = [*blocks[:at], *notes, *blocks[at:]]
        out = [*messages, *tail]
        _mark_last(out[-1])
        return out
    text, extra = notes
    if len(messages) == 1:
        out = [messages[0], {"role": "system", "content": text, **extra}]
    else:
        out = [
            messages[0],
            {"role": "system", "content": [], **extra},
            *messages[1:],
            {"role": "system", "content": text},
        ]
    out.extend(tail)
    _mark_last(out[-1])
    return out


def _without_unsigned_thinking(message: dict[str, Any], model: str) -> dict[str, Any]:
    """An assistant message keeps the thinking its model signed, as the CLI keeps a resumed
    record's thinking only when the record's model is the one it runs."""
    content = message.get("content")
    if message.get("role") != "assistant" or not isinstance(content, list):
        return message
    kept = []
    for block in content:
        if isinstance(block, dict) and SIGNED_BY in block:
            signer = block.pop(SIGNED_BY)
            if signer and signer != model:
                continue
        kept.append(block)
    message["content"] = kept
    return message


def _unmark(message: dict[str, Any]) -> None:
    content = message.get("content")
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                block.pop("cache_control", None)


def _mark_last(message: dict[str, Any]) -> None:
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = [{"type": "text", "text": content, "cache_control": dict(EPHEMERAL)}]
    elif isinstance(content, list) and content and isinstance(content[-1], dict):
        content[-1] = {**content[-1], "cache_control": dict(EPHEMERAL)}
    else:
        raise InjectMismatch("the last message has no block to carry the cache mark")


def _system(system: Any, assignment: Assignment, worker_messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The worker's billing header and identity, refingerprinted, then the caller's prompt."""
    if not isinstance(system, list) or len(system) != 2 or not all(isinstance(b, dict) for b in system):
        raise InjectMismatch("the worker's system blocks are not the billing header and the identity")
    billing, identity = (copy.deepcopy(b) for b in system)
    if not str(billing.get("text", "")).startswith("x-anthropic-billing-header:"):
        raise InjectMismatch("the worker's first system block is not the billing header")
    if not str(identity.get("text", "")).startswith(IDENTITY_PREFIX):
        raise InjectMismatch("the worker's second system block is not the CLI's identity")
    worker_first = first_text(next(m for m in worker_messages if m.get("role") == "user"))
    caller_first = first_text(assignment.messages[0])
    billing["text"] = _refingerprint(billing["text"], worker_first, caller_first)
    blocks = [billing, identity]
    if assignment.system:
        blocks.append({"type": "text", "text": assignment.system, "cache_control": dict(EPHEMERAL)})
    return blocks


def _refingerprint(header: str, worker_first: str, caller_first: str) -> str:
    """The header with the digits a fresh process derives from the caller's first message;
    raises when its digits are not the ones derived from the worker's first message (then the
    CLI derives them some other way)."""
    found = False

    def swap(match: re.Match[str]) -> str:
        nonlocal found
        version, digits = match.group(2), match.group(3)
        if digits != fingerprint(worker_first, version):
            raise InjectMismatch("the billing header's digits are not derived as this bridge knows")
        found = True
        return f"{match.group(1)}{version}.{fingerprint(caller_first, version)}{match.group(4)}"

    out = BILLING.sub(swap, header)
    if not found:
        raise InjectMismatch("the billing header carries no version digits")
    return out
