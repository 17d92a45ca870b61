"""Ollama ``POST /api/embed`` and the legacy ``POST /api/embeddings``.

Wire contract (ollama ``api/types.go`` and ``server/routes.go``):

* ``/api/embed {model, input: str | [str], truncate?, dimensions?, options?, keep_alive?}`` ->
  ``{model, embeddings: [[...]], total_duration, load_duration, prompt_eval_count}``, durations
  in integer nanoseconds. ``truncate: false`` turns an over-long input into a 400 instead of
  cutting it to the model's context.
* ``/api/embeddings {model, prompt}`` -> ``{embedding: [...]}``.
* As in Ollama, an empty input (``""``, ``[]``, no ``input``/``prompt``) only loads the model and
  answers 200 with no vectors: ollama-python's ``embed(model)`` sends ``input: ""`` for that.
* ``model`` is required (400); an unknown one is a 404. ``options`` and ``keep_alive`` are
  accepted and ignored: the model stays loaded and has nothing to tune.

Errors are raised as typed errors; the app's handler renders ``{"error": "..."}``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...embeddings.engine import check_dimensions
from ...errors import InvalidRequest, ModelNotFound
from ..common import embedding_engine, read_json
from ..schema import json_body

if TYPE_CHECKING:
    from ...embeddings.engine import EmbeddingEngine, EmbedResult

router = APIRouter()


class EmbedRequest(BaseModel):
    """``/api/embed`` body; unknown fields are kept and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = ""
    #: A string or a list of strings; checked by ``from_embed_input``.
    input: Any = Field(
        None,
        json_schema_extra={
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": "Text or texts; empty only loads the model.",
        },
    )
    truncate: bool | None = None
    dimensions: int | None = Field(None, gt=0)
    options: dict[str, Any] | None = None
    keep_alive: Any = None


class EmbeddingsRequest(BaseModel):
    """Legacy ``/api/embeddings`` body."""

    model_config = ConfigDict(extra="allow")

    model: str = ""
    prompt: str | None = None
    options: dict[str, Any] | None = None
    keep_alive: Any = None


# --- pure translators ------------------------------------------------------------------------


def parse_body(model: type[BaseModel], body: Any) -> Any:
    """Validate a decoded JSON body; any problem becomes an ``InvalidRequest`` naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidRequest(f"invalid {field}: {first['msg']}", param=field) from exc
    if not str(getattr(parsed, "model", "")).strip():
        raise InvalidRequest("model is required", param="model")
    return parsed


def from_embed_input(raw: Any) -> list[str]:
    """``input`` as a list of texts; empty (load only) when missing or empty, as Ollama does."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return list(raw)
    raise InvalidRequest("invalid input type: input must be a string or a list of strings", param="input")


def to_embed_response(model: str, result: EmbedResult, *, load_ns: int, total_ns: int) -> dict[str, Any]:
    return {
        "model": model,
        "embeddings": result.vectors,
        "total_duration": total_ns,
        "load_duration": load_ns,
        "prompt_eval_count": result.prompt_tokens,
    }


def to_embeddings_response(result: EmbedResult) -> dict[str, Any]:
    return {"embedding": result.vectors[0] if result.vectors else []}


# --- routes ------------------------------------------------------------------------------------


@router.post("/api/embed", tags=["ollama"], openapi_extra=json_body(EmbedRequest))
async def embed(request: Request) -> JSONResponse:
    start = time.perf_counter_ns()
    body: EmbedRequest = parse_body(EmbedRequest, await read_json(request))
    engine = embedding_engine(request)
    _check_model(engine, body.model)
    texts = from_embed_input(body.input)
    load_ns = 0
    if body.dimensions is not None or not texts:
        # Load first: the dimensions check needs the model, and an empty input means "load it".
        load_ns = await engine.load()
        check_dimensions(body.dimensions, engine.dimensions or 0)
    result = await engine.embed(texts, truncate=body.truncate is not False)
    total_ns = time.perf_counter_ns() - start
    return JSONResponse(to_embed_response(body.model, result, load_ns=load_ns + result.load_ns, total_ns=total_ns))


@router.post("/api/embeddings", tags=["ollama"], openapi_extra=json_body(EmbeddingsRequest))
async def embeddings(request: Request) -> JSONResponse:
    body: EmbeddingsRequest = parse_body(EmbeddingsRequest, await read_json(request))
    engine = embedding_engine(request)
    _check_model(engine, body.model)
    if not body.prompt:
        await engine.load()
    result = await engine.embed([body.prompt] if body.prompt else [])
    return JSONResponse(to_embeddings_response(result))


def _check_model(engine: EmbeddingEngine, model: str) -> None:
    if not engine.serves(model):
        raise ModelNotFound(f"model '{model}' not found", param="model")
