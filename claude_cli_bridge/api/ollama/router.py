"""Ollama routes (https://github.com/ollama/ollama/blob/main/docs/api.md).

Chat and generate answer NDJSON frames by default (``stream: false``: one object). An error
before the first frame is an HTTP status with ``{"error": "..."}`` (the surfaces' shape, and
the path rule's for the other ``/api/*`` routes); after it, a final ``{"error": "..."}``
line. Model management that cannot apply to CLI-served models answers a clear error instead
of a missing route.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ...core import reasoning
from ...core.turn import TurnEvent
from ...errors import BridgeError, InvalidRequest, NotSupported, Refused
from .. import error_shapes, state
from ..common import read_json, validate
from ..pipeline import NDJSON, Prepared, Surface, TurnContext, ndjson_line, run_turn
from . import translate
from .protocol import ChatRequest, CopyRequest, GenerateRequest, ModelRequest

router = APIRouter()

# Open WebUI parses this with int() per part and gates features on it: report a recent
# Ollama release rather than the bridge's own version.
OLLAMA_VERSION = "0.12.6"


@router.get("/api/version", tags=["ollama"])
@router.get("/version", tags=["ollama"], include_in_schema=False)
async def version() -> dict[str, str]:
    return {"version": OLLAMA_VERSION}


# -- generation --------------------------------------------------------------------------
def _messages(body: ChatRequest) -> int:
    return len(body.messages or ())


def _prepare(kind: translate.Kind) -> Callable[[Any, TurnContext], Prepared | Response]:
    """Translate a chat or generate request; the frame writer's clock starts with the request.
    A request that only loads (or unloads) the model is answered at once."""
    build = translate.from_chat_request if kind == "chat" else translate.from_generate_request

    def prepare(body: Any, context: TurnContext) -> Prepared | Response:
        turn = build(
            body,
            context.media,
            conversation_key=context.conversation_key,
        )
        frames = translate.FrameWriter(
            model=body.model or context.settings.default_model,
            kind=kind,
            started_ns=context.started_ns,
            think=reasoning.from_ollama(body.think).show,
        )
        if turn is None:
            state.engine(context.request).resolve_model(body.model)  # 404 for a model nobody serves
            return JSONResponse(frames.load(translate.is_unload(body.keep_alive)))
        return Prepared(
            turn,
            stream=body.stream is not False,
            writer=_Frames(frames),
            whole=lambda events: frames.whole(events, time.monotonic_ns()),
            on_first=lambda: frames.mark_first(time.monotonic_ns()),
        )

    return prepare


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


def _surface(kind: translate.Kind, body: type[Any], **more: Any) -> Surface[Any]:
    return Surface(f"ollama.{kind}", body, error_shapes.OLLAMA, "ndjson", _prepare(kind), **more)


CHAT = _surface("chat", ChatRequest, messages=_messages, open_webui_tasks=True)
GENERATE = _surface("generate", GenerateRequest)


@router.post("/api/chat", tags=["ollama"])
async def chat(request: Request) -> Response:
    return await run_turn(CHAT, request)


@router.post("/api/generate", tags=["ollama"])
async def generate(request: Request) -> Response:
    return await run_turn(GENERATE, request)


# -- models ------------------------------------------------------------------------------
def _embedding_names(request: Request) -> list[str]:
    embeddings = state.embeddings(request)
    return list(embeddings.model_names()) if embeddings is not None else []


def _known_model(request: Request, name: str) -> bool:
    """True for an embedding model; raises ModelNotFound (404) for names nobody serves."""
    if not name:
        raise InvalidRequest("model is required.", param="model")
    embeddings = state.embeddings(request)
    if embeddings is not None and embeddings.serves(name):
        return True
    state.engine(request).resolve_model(name)
    return False


@router.get("/api/tags", tags=["ollama"])
async def tags(request: Request) -> dict[str, Any]:
    return translate.tags_body(_embedding_names(request), state.settings(request).model_alias_map())


@router.post("/api/show", tags=["ollama"])
async def show(request: Request) -> dict[str, Any]:
    name = validate(ModelRequest, await read_json(request)).model_name
    return translate.show_body(name, embedding=_known_model(request, name))


@router.get("/api/ps", tags=["ollama"])
async def ps(request: Request) -> dict[str, Any]:
    """Models with a live CLI process; they stay until the pool's idle limit."""
    settings = state.settings(request)
    pool = state.engine(request).status().pool
    models = pool.models
    if not models and pool.processes:  # a pool that does not name its models: they run the default
        models = [settings.default_model]
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
    return StreamingResponse(iter([ndjson_line(line) for line in lines]), media_type=NDJSON)


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
