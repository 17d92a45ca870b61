"""OpenAI routes: chat completions (streaming and not), legacy completions and the model list.

Served under ``/v1`` and, for clients such as Continue that drop it, at the root as well.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from ...core import tasks
from ...core.models import CATALOG
from ...core.record import note
from ...core.turn import TextDelta, ThinkingDelta, ToolCall, TurnDone, TurnEvent
from ...errors import CliCrashed
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
from ..image_urls import fetch_as_data_url
from ..schema import json_body
from . import completions, translate
from .protocol import ChatCompletionRequest, ImagePart, ImageURL

log = logging.getLogger(__name__)
router = APIRouter()


@router.post("/v1/chat/completions", tags=["openai"], openapi_extra=json_body(ChatCompletionRequest))
@router.post("/chat/completions", tags=["openai"], include_in_schema=False)
async def chat_completions(request: Request):
    settings = request.app.state.settings
    chat = validate(ChatCompletionRequest, await read_json(request))
    note(stream=bool(chat.stream))  # for the request log (core.record)
    check_message_count(len(chat.messages), settings.max_messages)
    if settings.allow_image_urls:
        await _inline_image_urls(chat, settings)
    turn = translate.from_chat_request(
        chat,
        max_image_bytes=settings.max_image_bytes,
        max_document_bytes=settings.max_document_bytes,
        conversation_key=request.headers.get("x-conversation-id"),
    )
    task = tasks.task_kind(turn, streaming=bool(chat.stream))
    if task:
        # Open WebUI sends its title/tag/follow-up prompts over this connection too.
        log.info("Open WebUI %s task: answered by %s", task, settings.task_model or "the requested model")
        turn = tasks.as_task(turn, settings.task_model)
    model = chat.model or settings.default_model
    legacy = translate.is_legacy(chat)
    events = request.app.state.engine.stream(turn)
    try:
        if chat.stream:
            first, rest = await unless_disconnected(request, prime(events))
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            writer = translate.ChunkWriter(model=model, include_usage=include_usage, legacy=legacy)
            return EventSourceResponse(_sse(writer, first, rest), ping=15, sep="\n")
        collected = await unless_disconnected(request, collect_turn(events))
    except ClientGone:
        return JSONResponse({}, status_code=499)
    return JSONResponse(_completion(collected, model, legacy))


async def _inline_image_urls(chat: ChatCompletionRequest, settings) -> None:
    """Replace http(s) image URLs by data URLs of the fetched images (ALLOW_IMAGE_URLS)."""
    for index, message in enumerate(chat.messages):
        for number, part in enumerate(message.content if isinstance(message.content, list) else []):
            if not isinstance(part, ImagePart):
                continue
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            if url.startswith(("http://", "https://")):
                data_url = await fetch_as_data_url(
                    url,
                    max_bytes=settings.max_image_bytes,
                    timeout=settings.image_url_timeout_seconds,
                    where=f"messages[{index}].content[{number}]",
                )
                part.image_url = ImageURL(url=data_url)


def _completion(events: list[TurnEvent], model: str, legacy: bool) -> dict[str, Any]:
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    thinking = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    calls = [e for e in events if isinstance(e, ToolCall)]
    done = next((e for e in events if isinstance(e, TurnDone)), None)
    if done is None:  # the engine always ends a turn with TurnDone or an error
        raise CliCrashed("The Claude CLI ended the turn without a result.")
    return translate.to_completion(
        text,
        calls,
        done,
        model=model,
        completion_id=translate.new_completion_id(),
        created=int(time.time()),
        reasoning=thinking,
        legacy=legacy,
    )


async def _sse(
    writer: translate.ChunkWriter | completions.CompletionChunkWriter, first: TurnEvent, rest: AsyncIterator[TurnEvent]
):
    """SSE frames for one turn (the shared relay decides errors and the end)."""
    async for frame in relay(writer, first, rest):
        yield {"data": frame if isinstance(frame, str) else json.dumps(frame)}


@router.post("/v1/completions", tags=["openai"], openapi_extra=json_body(completions.CompletionRequest))
@router.post("/completions", tags=["openai"], include_in_schema=False)
async def legacy_completions(request: Request):
    """Legacy text completions (see ``completions``): one prompt, one answer."""
    settings = request.app.state.settings
    body = validate(completions.CompletionRequest, await read_json(request))
    turn = completions.from_completion_request(body, conversation_key=request.headers.get("x-conversation-id"))
    model = body.model or settings.default_model
    engine = request.app.state.engine
    engine.resolve_model(turn.model)  # a 404 before any work
    events = engine.stream(turn)
    try:
        if body.stream:
            first, rest = await unless_disconnected(request, prime(events))
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            writer = completions.CompletionChunkWriter(model=model, include_usage=include_usage)
            return EventSourceResponse(_sse(writer, first, rest), ping=15, sep="\n")
        collected = await unless_disconnected(request, collect_turn(events))
    except ClientGone:
        return JSONResponse({}, status_code=499)
    return JSONResponse(
        completions.to_completion(
            collected, model=model, completion_id=completions.new_completion_id(), created=int(time.time())
        )
    )


def _model_list(request: Request) -> list[dict[str, Any]]:
    """Every model id served: Claude's, the operator's MODEL_ALIASES, the embedding models."""
    data = [
        {
            "id": info.id,
            "object": "model",
            "created": info.created,
            "owned_by": "anthropic",
            # Not in OpenAI's schema (extra keys are ignored by SDKs); tells UIs images work.
            "capabilities": {"vision": True},
            "context_window": info.context_length,
        }
        for info in CATALOG
    ]
    data += [
        {"id": name, "object": "model", "created": CATALOG[0].created, "owned_by": "claude-cli-bridge"}
        for name in request.app.state.settings.model_alias_map()
    ]
    embeddings = getattr(request.app.state, "embeddings", None)
    if embeddings is not None:
        data += [
            {"id": name, "object": "model", "created": CATALOG[0].created, "owned_by": "claude-cli-bridge"}
            for name in embeddings.model_names()
        ]
    return data


@router.get("/v1/models", tags=["openai"])
@router.get("/models", tags=["openai"], include_in_schema=False)
async def list_models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": _model_list(request)}


@router.get("/v1/models/{model_id:path}", tags=["openai"])
@router.get("/models/{model_id:path}", tags=["openai"], include_in_schema=False)
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    """One model: a listed id as listed; any other name the engine serves (a claude-* id, a
    legacy id) as itself; 404 for the rest."""
    listed = next((entry for entry in _model_list(request) if entry["id"] == model_id), None)
    if listed is not None:
        return listed
    embeddings = getattr(request.app.state, "embeddings", None)
    if embeddings is not None and embeddings.serves(model_id):
        return {"id": model_id, "object": "model", "created": CATALOG[0].created, "owned_by": "claude-cli-bridge"}
    request.app.state.engine.resolve_model(model_id)  # 404 for names we do not serve
    return {"id": model_id, "object": "model", "created": CATALOG[0].created, "owned_by": "anthropic"}
