"""OpenAI routes: chat completions and legacy completions (two turn surfaces, declared for
``api.pipeline``) and the model list.

Served under ``/v1`` and, for clients such as Continue that drop it, at the root as well.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...core.models import CATALOG
from ...core.served import ServedModel, served_models
from .. import error_shapes, state
from ..image_urls import ImageFetch, is_http_url
from ..pipeline import Prepared, Surface, TurnContext, run_turn
from ..schema import json_body
from . import completions, translate
from .protocol import ChatCompletionRequest, ImagePart, ImageURL

router = APIRouter()


def _chat_messages(chat: ChatCompletionRequest) -> int:
    return len(chat.messages)


async def _inline_image_urls(chat: ChatCompletionRequest, fetch: ImageFetch) -> None:
    """Replace http(s) image URLs by data URLs of the fetched images (ALLOW_IMAGE_URLS)."""
    for index, message in enumerate(chat.messages):
        for number, part in enumerate(message.content if isinstance(message.content, list) else []):
            if not isinstance(part, ImagePart):
                continue
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            if is_http_url(url):
                part.image_url = ImageURL(url=await fetch.data_url(url, f"messages[{index}].content[{number}]"))


def _prepare_chat(chat: ChatCompletionRequest, context: TurnContext) -> Prepared:
    turn = translate.from_chat_request(
        chat,
        context.media,
        conversation_key=context.conversation_key,
    )
    model = chat.model or context.settings.default_model
    legacy = translate.is_legacy(chat)
    include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
    return Prepared(
        turn,
        stream=bool(chat.stream),
        writer=translate.ChunkWriter(model=model, include_usage=include_usage, legacy=legacy),
        whole=lambda events: translate.to_completion_from_events(events, model=model, legacy=legacy),
    )


CHAT = Surface(
    name="openai.chat",
    body=ChatCompletionRequest,
    errors=error_shapes.OPENAI,
    encoding="sse-data",
    prepare=_prepare_chat,
    messages=_chat_messages,
    image_urls=_inline_image_urls,
    open_webui_tasks=True,
)


def _prepare_completion(body: completions.CompletionRequest, context: TurnContext) -> Prepared:
    turn = completions.from_completion_request(body, conversation_key=context.conversation_key)
    model = body.model or context.settings.default_model
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    return Prepared(
        turn,
        stream=bool(body.stream),
        writer=completions.CompletionChunkWriter(model=model, include_usage=include_usage),
        whole=lambda events: completions.to_completion(
            events, model=model, completion_id=completions.new_completion_id(), created=int(time.time())
        ),
    )


COMPLETIONS = Surface(
    name="openai.completions",
    body=completions.CompletionRequest,
    errors=error_shapes.OPENAI,
    encoding="sse-data",
    prepare=_prepare_completion,
)


@router.post("/v1/chat/completions", tags=["openai"], openapi_extra=json_body(ChatCompletionRequest))
@router.post("/chat/completions", tags=["openai"], include_in_schema=False)
async def chat_completions(request: Request) -> Response:
    return await run_turn(CHAT, request)


@router.post("/v1/completions", tags=["openai"], openapi_extra=json_body(completions.CompletionRequest))
@router.post("/completions", tags=["openai"], include_in_schema=False)
async def legacy_completions(request: Request) -> Response:
    """Legacy text completions (see ``completions``): one prompt, one answer."""
    return await run_turn(COMPLETIONS, request)


def _model_list(request: Request) -> list[dict[str, Any]]:
    """Every model id served (``core.served``): Claude's, the operator's MODEL_ALIASES, the
    embedding models."""
    embeddings = state.embeddings(request)
    served = served_models(
        state.settings(request).model_alias_map(), embeddings.model_names() if embeddings is not None else ()
    )
    return [_model_entry(model) for model in served]


def _model_entry(model: ServedModel) -> dict[str, Any]:
    if model.info is None:
        return {"id": model.id, "object": "model", "created": model.created, "owned_by": "claude-cli-bridge"}
    return {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": "anthropic",
        # Not in OpenAI's schema (extra keys are ignored by SDKs); tells UIs images work.
        "capabilities": {"vision": True},
        "context_window": model.info.context_length,
    }


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
    embeddings = state.embeddings(request)
    if embeddings is not None and embeddings.serves(model_id):
        return {"id": model_id, "object": "model", "created": CATALOG[0].created, "owned_by": "claude-cli-bridge"}
    state.engine(request).resolve_model(model_id)  # 404 for names we do not serve
    return {"id": model_id, "object": "model", "created": CATALOG[0].created, "owned_by": "anthropic"}
