"""Ollama routes (https://github.com/ollama/ollama/blob/main/docs/api.md).

Chat and generate answer NDJSON frames by default (``stream: false``: one object). An error
before the first frame is an HTTP status with ``{"error": "..."}`` (rendered by the app for
``/api/*`` paths); after it, a final ``{"error": "..."}`` line. Model management that cannot
apply to CLI-served models answers a clear error instead of a missing route.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ...core import reasoning, tasks
from ...core.record import note
from ...core.turn import TurnEvent, TurnRequest
from ...errors import BridgeError, InvalidRequest, NotSupported, Refused
from ..common import (
    ClientGone,
    check_message_count,
    collect_turn,
    prime,
    read_json,
    relay,
    unless_disconnected,
    validate,
)
from . import translate
from .protocol import ChatRequest, CopyRequest, GenerateRequest, ModelRequest

log = logging.getLogger(__name__)
router = APIRouter()

# Open WebUI parses this with int() per part and gates features on it: report a recent
# Ollama release rather than the bridge's own version.
OLLAMA_VERSION = "0.12.6"
NDJSON = "application/x-ndjson"


@router.get("/api/version", tags=["ollama"])
@router.get("/version", tags=["ollama"], include_in_schema=False)
async def version() -> dict[str, str]:
    return {"version": OLLAMA_VERSION}


# -- generation --------------------------------------------------------------------------
@router.post("/api/chat", tags=["ollama"])
async def chat(request: Request) -> Response:
    body, turn, writer = await _begin(request, ChatRequest, translate.from_chat_request, "chat")
    if turn is None:
        return _load_reply(request, body, writer)
    streaming = body.stream is not False
    task = tasks.task_kind(turn, streaming)
    if task:
        # Open WebUI's title/tag/follow-up prompts: cheap, so a small model, and no conversation.
        task_model = request.app.state.settings.task_model
        log.info("Open WebUI %s task: answered by %s", task, task_model or "the requested model")
        turn = tasks.as_task(turn, task_model)
    return await _answer(request, turn, writer, streaming=streaming)


@router.post("/api/generate", tags=["ollama"])
async def generate(request: Request) -> Response:
    body, turn, writer = await _begin(request, GenerateRequest, translate.from_generate_request, "generate")
    if turn is None:
        return _load_reply(request, body, writer)
    return await _answer(request, turn, writer, streaming=body.stream is not False)


async def _begin(request: Request, model: type[Any], build: Any, kind: translate.Kind) -> Any:
    """Parse and translate a chat or generate request; the frame writer's clock starts here.
    The turn is None for a request that only loads (or unloads) the model."""
    started = time.monotonic_ns()
    settings = request.app.state.settings
    body: Any = validate(model, await read_json(request))
    check_message_count(len(getattr(body, "messages", None) or ()), settings.max_messages)
    turn = build(
        body,
        max_image_bytes=settings.max_image_bytes,
        max_document_bytes=settings.max_document_bytes,
        conversation_key=request.headers.get("x-conversation-id"),
    )
    writer = translate.FrameWriter(
        model=body.model or settings.default_model,
        kind=kind,
        started_ns=started,
        think=reasoning.from_ollama(body.think).show,
    )
    return body, turn, writer


def _load_reply(request: Request, body: Any, writer: translate.FrameWriter) -> Response:
    request.app.state.engine.resolve_model(body.model)  # 404 for a model nobody serves
    return JSONResponse(writer.load(translate.is_unload(body.keep_alive)))


async def _answer(request: Request, turn: TurnRequest, writer: translate.FrameWriter, streaming: bool) -> Response:
    engine = request.app.state.engine
    note(stream=streaming)  # for the request log (core.record)
    engine.resolve_model(turn.model)  # a 404 before any work
    events = engine.stream(turn)
    try:
        if streaming:
            first, rest = await unless_disconnected(request, prime(events))
            writer.mark_first(time.monotonic_ns())
            return StreamingResponse(_ndjson(writer, first, rest), media_type=NDJSON)
        collected = await unless_disconnected(
            request, collect_turn(events, on_first=lambda: writer.mark_first(time.monotonic_ns()))
        )
    except ClientGone:
        return Response(status_code=499)
    return JSONResponse(writer.whole(collected, time.monotonic_ns()))


def _line(frame: dict[str, Any]) -> bytes:
    return (json.dumps(frame, ensure_ascii=False) + "\n").encode()


class _Frames:
    """The relay's view of a FrameWriter: it stamps each event with the time it arrived."""

    def __init__(self, writer: translate.FrameWriter):
        self.writer = writer

    @property
    def finished(self) -> bool:
        return self.writer.finished

    def on_event(self, event: TurnEvent) -> list[dict[str, Any]]:
        return self.writer.on_event(event, time.monotonic_ns())

    def on_error(self, error: BridgeError) -> list[dict[str, Any]]:
        return [translate.error_frame(error)]  # ollama-python and ollama-js raise on it

    def closing(self) -> list[dict[str, Any]]:
        return []


async def _ndjson(writer: translate.FrameWriter, first: TurnEvent, rest: AsyncIterator[TurnEvent]):
    """NDJSON lines for one turn, never a blank one (the shared relay decides errors)."""
    async for frame in relay(_Frames(writer), first, rest):
        yield _line(frame)


# -- models ------------------------------------------------------------------------------
def _embedding_names(request: Request) -> list[str]:
    embeddings = getattr(request.app.state, "embeddings", None)
    return list(embeddings.model_names()) if embeddings is not None else []


def _known_model(request: Request, name: str) -> bool:
    """True for an embedding model; raises ModelNotFound (404) for names nobody serves."""
    if not name:
        raise InvalidRequest("model is required.", param="model")
    embeddings = getattr(request.app.state, "embeddings", None)
    if embeddings is not None and embeddings.serves(name):
        return True
    request.app.state.engine.resolve_model(name)
    return False


@router.get("/api/tags", tags=["ollama"])
async def tags(request: Request) -> dict[str, Any]:
    return translate.tags_body(_embedding_names(request), request.app.state.settings.model_alias_map())


@router.post("/api/show", tags=["ollama"])
async def show(request: Request) -> dict[str, Any]:
    name = validate(ModelRequest, await read_json(request)).model_name
    return translate.show_body(name, embedding=_known_model(request, name))


@router.get("/api/ps", tags=["ollama"])
async def ps(request: Request) -> dict[str, Any]:
    """Models with a live CLI process; they stay until the pool's idle limit."""
    settings = request.app.state.settings
    pool = request.app.state.engine.status().get("pool") or {}
    models = pool.get("models")
    if models is None:  # a pool that does not name its models: its processes run the default
        models = [settings.default_model] if pool.get("processes") else []
    expires = datetime.now(UTC) + timedelta(seconds=settings.spare_idle_seconds)
    return translate.ps_body(models, expires)


@router.post("/api/pull", tags=["ollama"])
async def pull(request: Request) -> Response:
    """Nothing to download: a served model "pulls" at once; others are 404."""
    body = validate(ModelRequest, await read_json(request))
    _known_model(request, body.model_name)
    if body.stream is False:
        return JSONResponse({"status": "success"})
    lines = [{"status": "pulling manifest"}, {"status": "success"}]
    return StreamingResponse(iter([_line(line) for line in lines]), media_type=NDJSON)


@router.delete("/api/delete", tags=["ollama"])
async def delete(request: Request) -> Response:
    name = validate(ModelRequest, await read_json(request)).model_name
    _known_model(request, name)
    raise Refused(f"'{name}' is served through the Claude CLI and cannot be deleted.")


@router.post("/api/copy", tags=["ollama"])
async def copy(request: Request) -> Response:
    body = validate(CopyRequest, await read_json(request))
    _known_model(request, body.source)
    raise NotSupported(
        "Copying models is not supported: the bridge serves a fixed set of Claude models; "
        f"use '{body.source}' by its own name."
    )


@router.post("/api/create", tags=["ollama"])
async def create(request: Request) -> Response:
    raise NotSupported(
        "Creating models is not supported: the bridge serves Claude models through the CLI. "
        "Send a system prompt with each request instead."
    )


@router.post("/api/push", tags=["ollama"])
async def push(request: Request) -> Response:
    raise NotSupported("Pushing models is not supported: the bridge has no model files.")


@router.head("/api/blobs/{digest}", tags=["ollama"], include_in_schema=False)
@router.post("/api/blobs/{digest}", tags=["ollama"], include_in_schema=False)
async def blobs(digest: str) -> Response:
    raise NotSupported("Model blobs are not supported: the bridge has no model files.")
