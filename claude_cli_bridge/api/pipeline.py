"""The one turn pipeline: every turn surface (OpenAI chat and legacy completions, Responses,
Anthropic Messages, Ollama chat and generate) declares itself as a ``Surface`` and its route
calls ``run_turn``, which takes every request through the same steps in the same order:

1. read the body (``read_json``: size and JSON limits) and validate it as ``Surface.body``;
2. count the caller's messages against ``MAX_MESSAGES`` (``Surface.messages``);
3. with ``ALLOW_IMAGE_URLS``, fetch image URLs into data (``Surface.image_urls``);
4. translate (``Surface.prepare``): a ``Prepared`` turn, or a whole ``Response`` for a
   request that needs no turn (Ollama's model load);
5. Open WebUI's title/tag/follow-up tasks go to ``TASK_MODEL`` (``Surface.open_webui_tasks``);
6. the model is resolved (a 404 before any work);
7. the per-request checks (see below);
8. the engine streams the turn: streaming answers wait for the first event (so an error before
   the first byte is an HTTP status) and relay the rest through the surface's writer and frame
   encoding; whole answers collect the turn and build the body (``Prepared.whole``);
9. a client that leaves ends the turn (the CLI's answer is stopped) and gets a 499.

Errors before the first byte render in ``Surface.errors``, the surface's own shape, whatever
the path (an unexpected exception as a 500 "internal error", logged with its traceback); after
it the writer's in-band error frames say what failed.

Per-request checks: ``app.state.turn_checks`` (``turn_checks``) is a list of async
callables ``check(TurnCheckContext)``, run in order after the turn is translated, its model
resolved and its caller (``state.caller``: the key middleware's finding) put on the
TurnRequest, and before the engine is called. Each sees the surface (so it knows the
protocol), the HTTP request and the TurnRequest, and may raise a BridgeError (rendered in the
surface's shape), add response headers (``context.headers``): those are sent with the turn's
answer, streaming or whole, and with an error the pipeline renders), or hold something for
the turn's length (``context.releases``: each is called once when the turn ends, however it
ends: a key's concurrency slot). The app installs the per-key checks (``api.admission``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from sse_starlette import EventSourceResponse

from ..core import tasks
from ..core.record import note
from ..core.turn import TurnEvent, TurnRequest
from ..errors import BridgeError
from . import state
from .common import (
    ClientGone,
    StreamWriter,
    check_message_count,
    collect_turn,
    prime,
    read_json,
    relay,
    unless_disconnected,
    validate,
)
from .error_shapes import ErrorShape
from .image_urls import ImageFetch
from .parts import MediaLimits

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)
B = TypeVar("B", bound=BaseModel)

Encoding = Literal["sse-data", "sse-events", "ndjson"]
"""How frames go on the wire: SSE ``data:`` only (OpenAI: a chunk object or ``[DONE]``),
SSE with ``event:`` names (Anthropic, Responses: ``(name, data)`` frames), or NDJSON lines
(Ollama)."""

NDJSON = "application/x-ndjson"


@dataclass
class TurnContext:
    """What a surface's ``prepare`` may use besides its body."""

    request: Request
    conversation_key: str | None  # the X-Conversation-Id header
    media: MediaLimits
    started_ns: int  # time.monotonic_ns() when the pipeline took the request (Ollama's durations)
    headers: dict[str, str] = field(default_factory=dict)  # response headers so far (checks add to them)

    @property
    def settings(self) -> Settings:
        return state.settings(self.request)


@dataclass
class Prepared:
    """A translated turn and how to answer it."""

    turn: TurnRequest
    stream: bool
    writer: StreamWriter[Any]  # per-stream state; whole answers may read it too
    whole: Callable[[list[TurnEvent]], Any]  # the non-streaming body from all the turn's events
    on_first: Callable[[], None] | None = None  # when the first event arrives (Ollama's timings)


@dataclass
class TurnCheckContext:
    """What a per-request check sees (see the module docstring)."""

    surface: Surface[Any]
    request: Request
    turn: TurnRequest
    headers: dict[str, str]
    releases: list[Callable[[], None]] = field(default_factory=list)


TurnCheck = Callable[[TurnCheckContext], Awaitable[None]]


def turn_checks(request: Request) -> list[TurnCheck]:
    """The per-request checks every turn passes before the engine is called; empty unless the
    app installed some (``app.state.turn_checks``)."""
    return cast("list[TurnCheck]", getattr(request.app.state, "turn_checks", []))


@dataclass(frozen=True)
class Surface(Generic[B]):
    """One turn surface's declaration: everything ``run_turn`` needs to know about it."""

    name: str  # for logs: "openai.chat", "anthropic.messages"...
    body: type[B]
    errors: ErrorShape
    encoding: Encoding
    prepare: Callable[[B, TurnContext], Prepared | Response]
    messages: Callable[[B], int] | None = None  # how many messages the caller sent (MAX_MESSAGES)
    image_urls: Callable[[B, ImageFetch], Awaitable[None]] | None = None  # ALLOW_IMAGE_URLS walker
    open_webui_tasks: bool = False


async def run_turn(surface: Surface[Any], request: Request) -> Response:
    """Answer one turn request on ``surface`` (the steps are in the module docstring)."""
    headers: dict[str, str] = {}
    try:
        return await _run(surface, request, headers)
    except ClientGone:
        return Response(status_code=499)  # nobody reads it: the client left
    except BridgeError as error:
        return surface.errors.render(error, headers)
    except Exception:
        log.exception("turn failed before the first byte (%s)", surface.name)
        return surface.errors.render(BridgeError("Internal error; see the server log."), headers)


async def _run(surface: Surface[Any], request: Request, headers: dict[str, str]) -> Response:
    started_ns = time.monotonic_ns()
    settings = state.settings(request)
    body = validate(surface.body, await read_json(request))
    if surface.messages is not None:
        check_message_count(surface.messages(body), settings.max_messages)
    if surface.image_urls is not None and settings.allow_image_urls:
        await surface.image_urls(body, ImageFetch(settings.max_image_bytes, settings.image_url_timeout_seconds))
    context = TurnContext(
        request,
        request.headers.get("x-conversation-id"),
        MediaLimits.of(settings.max_image_bytes, settings.max_document_bytes),  # 0 documents: the image limit
        started_ns,
        headers,
    )
    prepared = surface.prepare(body, context)
    if isinstance(prepared, Response):
        return prepared
    note(stream=prepared.stream)  # for the request log (core.record)
    turn = prepared.turn
    task = tasks.task_kind(turn, prepared.stream) if surface.open_webui_tasks else None
    if task:
        # Open WebUI sends its title/tag/follow-up prompts over the same connection: cheap, so
        # TASK_MODEL answers them, without a conversation.
        log.info("Open WebUI %s task: answered by %s", task, settings.task_model or "the requested model")
        turn = tasks.as_task(turn, settings.task_model)
    engine = state.engine(request)
    engine.resolve_model(turn.model)  # a 404 before any work
    turn.caller = state.caller(request)
    releases: list[Callable[[], None]] = []
    try:
        for check in turn_checks(request):
            await check(TurnCheckContext(surface, request, turn, headers, releases))
        events = _releasing(engine.stream(turn), releases)
        if prepared.stream:
            first, rest = await unless_disconnected(request, prime(events))
            if prepared.on_first is not None:
                prepared.on_first()
            return _streaming(surface.encoding, relay(prepared.writer, first, rest), headers)
        collected = await unless_disconnected(request, collect_turn(events, on_first=prepared.on_first))
    except BaseException:
        _release(releases)  # the turn ended before its stream began (a refusal, a client that left)
        raise
    _release(releases)
    return JSONResponse(prepared.whole(collected), headers=headers)


async def _releasing(events: AsyncIterator[TurnEvent], releases: list[Callable[[], None]]) -> AsyncIterator[TurnEvent]:
    """The turn's events; when they end (or the relay closes them: the client left), the
    checks' holds are released."""
    try:
        async for event in events:
            yield event
    finally:
        _release(releases)
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def _release(releases: list[Callable[[], None]]) -> None:
    while releases:
        releases.pop()()


def _streaming(encoding: Encoding, frames: AsyncIterator[Any], headers: dict[str, str]) -> Response:
    if encoding == "ndjson":
        return StreamingResponse(_ndjson(frames), media_type=NDJSON, headers=headers)
    encode = _sse_data if encoding == "sse-data" else _sse_event
    return EventSourceResponse(_sse(frames, encode), ping=15, sep="\n", headers=headers)


async def _sse(frames: AsyncIterator[Any], encode: Callable[[Any], dict[str, str]]) -> AsyncIterator[dict[str, str]]:
    async for frame in frames:
        yield encode(frame)


def _sse_data(frame: dict[str, Any] | str) -> dict[str, str]:
    return {"data": frame if isinstance(frame, str) else json.dumps(frame)}


def _sse_event(frame: tuple[str, dict[str, Any]]) -> dict[str, str]:
    name, data = frame
    return {"event": name, "data": json.dumps(data, ensure_ascii=False)}


def ndjson_line(frame: dict[str, Any]) -> bytes:
    return (json.dumps(frame, ensure_ascii=False) + "\n").encode()


async def _ndjson(frames: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for frame in frames:
        yield ndjson_line(frame)
