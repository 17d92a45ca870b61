"""OpenAI Responses API routes: ``POST /v1/responses`` (streaming and not), ``GET`` and
``DELETE /v1/responses/{id}``. Errors use OpenAI's shape; after the first byte they are
``response.failed`` and ``error`` events.

A completed response is stored (unless ``store: false``) before its ``response.completed``
event is sent, so a client that follows up at once with ``previous_response_id`` finds it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse

from ...core.messages import Message
from ...core.turn import TurnEvent
from ...errors import BridgeError
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
from . import translate, writer
from .protocol import ResponsesRequest
from .store import ResponseStore, StoredResponse

log = logging.getLogger(__name__)
router = APIRouter()
FINAL_EVENTS = ("response.completed", "response.incomplete")


class ResponseNotFound(BridgeError):
    status = 404
    kind = "invalid_request_error"
    code = "not_found"


def response_store(request: Request) -> ResponseStore:
    """The app's store, made on first use from the settings."""
    store = getattr(request.app.state, "responses_store", None)
    if store is None:
        settings = request.app.state.settings
        directory = settings.state_dir / "responses" if settings.responses_store_persist else None
        store = request.app.state.responses_store = ResponseStore(
            settings.responses_store_max, directory, settings.responses_store_max_mb * 1024 * 1024
        )
    return store


@router.post("/v1/responses", tags=["responses"], openapi_extra=json_body(ResponsesRequest))
async def create_response(request: Request) -> Response:
    settings = request.app.state.settings
    body = validate(ResponsesRequest, await read_json(request))
    check_message_count(len(body.input) if isinstance(body.input, list) else 1, settings.max_messages)
    store = response_store(request)
    previous = None
    if body.previous_response_id:
        stored = store.get(body.previous_response_id)
        if stored is None:
            raise ResponseNotFound(
                f"Previous response with id '{body.previous_response_id}' not found (never stored, stored with "
                "store: false, deleted, or evicted).",
                param="previous_response_id",
            )
        previous = translate.Previous(stored.messages, stored.system_inputs)
    if settings.allow_image_urls and isinstance(body.input, list):
        await _inline_image_urls(body.input, settings)
    translated = translate.from_responses_request(
        body,
        previous=previous,
        default_model=settings.default_model,
        max_image_bytes=settings.max_image_bytes,
        max_document_bytes=settings.max_document_bytes,
        conversation_key=request.headers.get("x-conversation-id"),
    )
    if translated.dropped_tools:
        log.info("%d hosted tools offered but not given to the model", len(translated.dropped_tools))  # no caller text
    turn = translated.turn
    engine = request.app.state.engine
    engine.resolve_model(turn.model)  # a 404 before any work
    stream_writer = writer.ResponseWriter(
        echo=writer.echo_fields(body, turn.model),
        namespaces=translated.namespaces,
        show_reasoning=translated.show_reasoning,
    )

    def remember() -> None:
        if body.store is False or stream_writer.final is None:
            return
        answer = stream_writer.answer_message()
        messages: tuple[Message, ...] = (*turn.messages, answer) if answer.content else tuple(turn.messages)
        store.put(StoredResponse(stream_writer.final, messages, translated.system_inputs))

    events = engine.stream(turn)
    try:
        if body.stream:
            first, rest = await unless_disconnected(request, prime(events))
            return EventSourceResponse(_sse(stream_writer, first, rest, remember), ping=15, sep="\n")
        collected = await unless_disconnected(request, collect_turn(events))
    except ClientGone:
        return Response(status_code=499)
    result = writer.to_response(stream_writer, collected)
    remember()
    return JSONResponse(result)


async def _sse(frames: writer.ResponseWriter, first: TurnEvent, rest: AsyncIterator[TurnEvent], remember):
    async for name, data in relay(frames, first, rest):
        if name in FINAL_EVENTS:
            remember()
        yield {"event": name, "data": json.dumps(data, ensure_ascii=False)}


@router.get("/v1/responses/{response_id}", tags=["responses"])
async def get_response(response_id: str, request: Request) -> dict[str, Any]:
    stored = response_store(request).get(response_id)
    if stored is None:
        raise ResponseNotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return stored.response


@router.delete("/v1/responses/{response_id}", tags=["responses"])
async def delete_response(response_id: str, request: Request) -> dict[str, Any]:
    if not response_store(request).delete(response_id):
        raise ResponseNotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return {"id": response_id, "object": "response.deleted", "deleted": True}


async def _inline_image_urls(items: list[dict[str, Any]], settings) -> None:
    """Replace http(s) ``input_image`` URLs by data URLs of the fetched images (ALLOW_IMAGE_URLS)."""
    for index, item in enumerate(items):
        content = item.get("content") if isinstance(item, dict) else None
        for number, part in enumerate(content if isinstance(content, list) else []):
            url = part.get("image_url") if isinstance(part, dict) and part.get("type") == "input_image" else None
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                part["image_url"] = await fetch_as_data_url(
                    url,
                    max_bytes=settings.max_image_bytes,
                    timeout=settings.image_url_timeout_seconds,
                    where=f"input[{index}].content[{number}]",
                )
