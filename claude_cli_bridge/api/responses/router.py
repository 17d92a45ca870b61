"""OpenAI Responses API routes: ``POST /v1/responses`` (streaming and not), ``GET`` and
``DELETE /v1/responses/{id}``. Errors use OpenAI's shape; after the first byte they are
``response.failed`` and ``error`` events.

A completed response is stored (unless ``store: false``) before its ``response.completed``
event is sent, so a client that follows up at once with ``previous_response_id`` finds it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...core.messages import Message
from ...core.turn import TurnDone, TurnEvent
from ...errors import BridgeError
from .. import error_shapes, state
from ..image_urls import ImageFetch, is_http_url
from ..pipeline import Prepared, Surface, TurnContext, run_turn
from ..schema import json_body
from . import translate, writer
from .protocol import ResponsesRequest
from .store import ResponseStore, StoredResponse

log = logging.getLogger(__name__)
router = APIRouter()


class ResponseNotFound(BridgeError, status=404, kind="invalid_request_error", code="not_found"):
    """No stored response by that id for this caller (another key's is not found either)."""


def response_store(request: Request) -> ResponseStore:
    """The app's store (``create_app`` makes it)."""
    return cast(ResponseStore, state.get(request, "responses_store"))


def _messages(body: ResponsesRequest) -> int:
    return len(body.input) if isinstance(body.input, list) else 1


def _prepare(body: ResponsesRequest, context: TurnContext) -> Prepared:
    store = response_store(context.request)
    previous = None
    if body.previous_response_id:
        stored = store.get(body.previous_response_id, state.tenant(context.request))
        if stored is None:
            raise ResponseNotFound(
                f"Previous response with id '{body.previous_response_id}' not found (never stored, stored with "
                "store: false, deleted, or evicted).",
                param="previous_response_id",
            )
        previous = translate.Previous(stored.messages, stored.system_inputs)
    translated = translate.from_responses_request(
        body,
        context.media,
        previous=previous,
        default_model=context.settings.default_model,
        conversation_key=context.conversation_key,
    )
    if translated.dropped_tools:
        log.info("%d hosted tools offered but not given to the model", len(translated.dropped_tools))  # no caller text
    turn = translated.turn
    frames = writer.ResponseWriter(
        echo=writer.echo_fields(body, turn.model),
        namespaces=translated.namespaces,
        show_reasoning=translated.show_reasoning,
    )

    def remember() -> None:
        if body.store is False or frames.final is None:
            return
        answer = frames.answer_message()
        messages: tuple[Message, ...] = (*turn.messages, answer) if answer.content else tuple(turn.messages)
        store.put(StoredResponse(frames.final, messages, translated.system_inputs, state.tenant(context.request)))

    def whole(events: list[TurnEvent]) -> dict[str, Any]:
        result = writer.to_response(frames, events)
        remember()
        return result

    return Prepared(turn, stream=bool(body.stream), writer=_Remembering(frames, remember), whole=whole)


class _Remembering:
    """The relay's view of a ResponseWriter: the response is stored as soon as its final
    event is made, so it is in the store before the client reads that event."""

    def __init__(self, frames: writer.ResponseWriter, remember: Callable[[], None]):
        self.frames = frames
        self.remember = remember

    @property
    def finished(self) -> bool:
        return self.frames.finished

    def on_event(self, event: TurnEvent) -> list[writer.Frame]:
        out = self.frames.on_event(event)
        if isinstance(event, TurnDone):  # its frames hold response.completed (or .incomplete)
            self.remember()
        return out

    def on_error(self, error: BridgeError) -> list[writer.Frame]:
        return self.frames.on_error(error)

    def closing(self) -> list[writer.Frame]:
        return self.frames.closing()


async def _inline_image_urls(body: ResponsesRequest, fetch: ImageFetch) -> None:
    """Replace http(s) ``input_image`` URLs by data URLs of the fetched images (ALLOW_IMAGE_URLS)."""
    for index, item in enumerate(body.input if isinstance(body.input, list) else []):
        content = item.get("content") if isinstance(item, dict) else None
        for number, part in enumerate(content if isinstance(content, list) else []):
            url = part.get("image_url") if isinstance(part, dict) and part.get("type") == "input_image" else None
            if is_http_url(url):
                part["image_url"] = await fetch.data_url(url, f"input[{index}].content[{number}]")


RESPONSES = Surface(
    name="openai.responses",
    body=ResponsesRequest,
    errors=error_shapes.OPENAI,
    encoding="sse-events",
    prepare=_prepare,
    messages=_messages,
    image_urls=_inline_image_urls,
)


@router.post("/v1/responses", tags=["responses"], openapi_extra=json_body(ResponsesRequest))
async def create_response(request: Request) -> Response:
    return await run_turn(RESPONSES, request)


@router.get("/v1/responses/{response_id}", tags=["responses"])
async def get_response(response_id: str, request: Request) -> dict[str, Any]:
    stored = response_store(request).get(response_id, state.tenant(request))  # another key's: a 404
    if stored is None:
        raise ResponseNotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return stored.response


@router.delete("/v1/responses/{response_id}", tags=["responses"])
async def delete_response(response_id: str, request: Request) -> dict[str, Any]:
    if not response_store(request).delete(response_id, state.tenant(request)):
        raise ResponseNotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return {"id": response_id, "object": "response.deleted", "deleted": True}
