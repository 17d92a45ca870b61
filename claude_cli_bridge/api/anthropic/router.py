"""Anthropic Messages API routes, on the OpenAI port: ``POST /v1/messages`` (streaming and
not) and ``POST /v1/messages/count_tokens`` (refused: there is no honest count to give).

Keys come as ``x-api-key`` or ``Authorization: Bearer`` (checked by the app for every route);
``anthropic-version`` and ``anthropic-beta`` headers are accepted and need nothing. Errors
before the first byte are HTTP statuses in Anthropic's shape (the app renders ``/v1/messages*``
paths so); after it, an ``event: error`` frame.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse

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
from . import translate
from .protocol import ImageBlock, ImageSource, MessagesRequest, ToolResultBlock

router = APIRouter()


class CountTokensUnavailable(BridgeError):
    """The CLI exposes no token counter, and an estimate would be a wrong answer."""

    status = 501
    kind = "api_error"
    code = "not_implemented"


@router.post("/v1/messages", tags=["anthropic"], openapi_extra=json_body(MessagesRequest))
async def messages(request: Request) -> Response:
    settings = request.app.state.settings
    body = validate(MessagesRequest, await read_json(request))
    check_message_count(len(body.messages), settings.max_messages)
    if settings.allow_image_urls:
        await _inline_image_urls(body, settings)
    turn = translate.from_messages_request(
        body,
        max_image_bytes=settings.max_image_bytes,
        max_document_bytes=settings.max_document_bytes,
        conversation_key=request.headers.get("x-conversation-id"),
    )
    show = translate.shows_thinking(body)
    engine = request.app.state.engine
    engine.resolve_model(turn.model)  # a 404 before any work
    events = engine.stream(turn)
    try:
        if body.stream:
            first, rest = await unless_disconnected(request, prime(events))
            writer = translate.EventWriter(model=body.model, show_thinking=show)
            return EventSourceResponse(_sse(writer, first, rest), ping=15, sep="\n")
        collected = await unless_disconnected(request, collect_turn(events))
    except ClientGone:
        return Response(status_code=499)
    message = translate.to_message(
        collected, model=body.model, message_id=translate.new_message_id(), show_thinking=show
    )
    return JSONResponse(message)


async def _sse(writer: translate.EventWriter, first: TurnEvent, rest: AsyncIterator[TurnEvent]):
    async for name, data in relay(writer, first, rest):
        yield {"event": name, "data": json.dumps(data, ensure_ascii=False)}


# Out of the OpenAPI description: its one answer is a 501, which fuzzing would flag as a failure.
@router.post("/v1/messages/count_tokens", tags=["anthropic"], include_in_schema=False)
async def count_tokens(request: Request) -> Response:
    raise CountTokensUnavailable(
        "count_tokens is not available: the Claude CLI exposes no way to count tokens without running a turn, "
        "and this bridge gives no estimates. Token counts of real turns are in each message's usage."
    )


async def _inline_image_urls(body: MessagesRequest, settings) -> None:
    """Replace URL image sources by the fetched images as base64 (ALLOW_IMAGE_URLS)."""
    for index, message in enumerate(body.messages):
        blocks = message.content if isinstance(message.content, list) else []
        for number, block in enumerate(blocks):
            where = f"messages[{index}].content[{number}]"
            parts = block.content if isinstance(block, ToolResultBlock) and isinstance(block.content, list) else [block]
            for part in parts:
                if isinstance(part, ImageBlock) and part.source.type == "url" and part.source.url:
                    data_url = await fetch_as_data_url(
                        part.source.url,
                        max_bytes=settings.max_image_bytes,
                        timeout=settings.image_url_timeout_seconds,
                        where=where,
                    )
                    media_type, _, data = data_url[len("data:") :].partition(";base64,")
                    part.source = ImageSource(type="base64", media_type=media_type, data=data)
