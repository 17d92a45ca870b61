"""Anthropic Messages API routes, on the OpenAI port: ``POST /v1/messages`` (streaming and
not) and ``POST /v1/messages/count_tokens`` (refused: there is no honest count to give).

Keys come as ``x-api-key`` or ``Authorization: Bearer`` (checked by the app for every route);
``anthropic-version`` and ``anthropic-beta`` headers are accepted and need nothing. Errors
before the first byte are HTTP statuses in Anthropic's shape (the surface's, and the path
rule's for ``count_tokens``); after it, an ``event: error`` frame.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...errors import BridgeError
from .. import error_shapes
from ..image_urls import ImageFetch
from ..pipeline import Prepared, Surface, TurnContext, run_turn
from ..schema import json_body
from . import translate
from .protocol import ImageBlock, ImageSource, MessagesRequest, ToolResultBlock

router = APIRouter()


class CountTokensUnavailable(BridgeError, status=501, kind="api_error", code="not_implemented"):
    """The CLI exposes no token counter, and an estimate would be a wrong answer."""


def _messages(body: MessagesRequest) -> int:
    return len(body.messages)


def _prepare(body: MessagesRequest, context: TurnContext) -> Prepared:
    turn = translate.from_messages_request(
        body,
        context.media,
        conversation_key=context.conversation_key,
    )
    show = translate.shows_thinking(body)
    return Prepared(
        turn,
        stream=bool(body.stream),
        writer=translate.EventWriter(model=body.model, show_thinking=show),
        whole=lambda events: translate.to_message(
            events, model=body.model, message_id=translate.new_message_id(), show_thinking=show
        ),
    )


async def _inline_image_urls(body: MessagesRequest, fetch: ImageFetch) -> None:
    """Replace URL image sources by the fetched images as base64 (ALLOW_IMAGE_URLS)."""
    for index, message in enumerate(body.messages):
        blocks = message.content if isinstance(message.content, list) else []
        for number, block in enumerate(blocks):
            where = f"messages[{index}].content[{number}]"
            parts = block.content if isinstance(block, ToolResultBlock) and isinstance(block.content, list) else [block]
            for part in parts:
                if isinstance(part, ImageBlock) and part.source.type == "url" and part.source.url:
                    data_url = await fetch.data_url(part.source.url, where)
                    media_type, _, data = data_url[len("data:") :].partition(";base64,")
                    part.source = ImageSource(type="base64", media_type=media_type, data=data)


MESSAGES = Surface(
    name="anthropic.messages",
    body=MessagesRequest,
    errors=error_shapes.ANTHROPIC,
    encoding="sse-events",
    prepare=_prepare,
    messages=_messages,
    image_urls=_inline_image_urls,
)


@router.post("/v1/messages", tags=["anthropic"], openapi_extra=json_body(MessagesRequest))
async def messages(request: Request) -> Response:
    return await run_turn(MESSAGES, request)


# Out of the OpenAPI description: its one answer is a 501, which fuzzing would flag as a failure.
@router.post("/v1/messages/count_tokens", tags=["anthropic"], include_in_schema=False)
async def count_tokens(request: Request) -> Response:
    raise CountTokensUnavailable(
        "count_tokens is not available: the Claude CLI exposes no way to count tokens without running a turn, "
        "and this bridge gives no estimates. Token counts of real turns are in each message's usage."
    )
