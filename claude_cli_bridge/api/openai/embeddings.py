"""OpenAI ``POST /v1/embeddings`` (and ``POST /embeddings`` for clients that drop ``/v1``).

Wire contract (https://platform.openai.com/docs/api-reference/embeddings/create):

* ``input``: a string, a list of strings, a list of token ids, or a list of token-id lists
  (LangChain sends ids). Token ids are decoded with the tokenizer the model name implies:
  cl100k_base for OpenAI's names (what LangChain and LiteLLM tokenize with), the served model's
  own for the rest (``token_ids``). A missing or empty
  input (``""``, ``[]``) is a 400; empty strings inside a non-empty list are embedded as they are.
* ``model``: any name the engine serves (``text-embedding-3-small``, ``all-minilm``...); it is
  echoed back. Missing means the canonical model; unknown is a 404.
* ``encoding_format``: ``float`` (default) or ``base64`` (little-endian float32, which the
  openai SDK asks for unless told otherwise).
* ``dimensions``: accepted only when it equals the model's; the model cannot shorten its vectors.
* Response: ``{object: "list", data: [{object: "embedding", index, embedding}], model,
  usage: {prompt_tokens, total_tokens}}`` with real tokenizer counts.

Errors are raised as typed errors; the app's handler renders the OpenAI error body. The body is
parsed here, not by FastAPI, so a wrong type is a 400 naming the field rather than a 422.
"""

from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...embeddings.engine import check_dimensions
from ...errors import InvalidRequest, ModelNotFound
from ..common import embedding_engine, read_json
from ..schema import json_body

if TYPE_CHECKING:
    pass

router = APIRouter()

#: One input after shape checks: a text, or token ids still to decode.
Item = str | list[int]


class EmbeddingRequest(BaseModel):
    """The request body. Unknown fields (clients send many) are kept and ignored."""

    model_config = ConfigDict(extra="allow")

    #: Checked by ``from_embedding_input``, which gives clearer messages than a union type would;
    #: the schema below is what /openapi.json shows.
    input: Any = Field(
        None,
        json_schema_extra={
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}},
                {"type": "array", "items": {"type": "integer", "minimum": 0}},
                {"type": "array", "items": {"type": "array", "items": {"type": "integer", "minimum": 0}}},
            ],
            "description": "Text, texts, token ids, or lists of token ids.",
        },
    )
    model: str | None = None
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, gt=0)
    user: str | None = None


# --- pure translators ------------------------------------------------------------------------


def parse_embedding_request(body: Any) -> EmbeddingRequest:
    """Validate a decoded JSON body; any problem becomes an ``InvalidRequest`` naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        return EmbeddingRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidRequest(f"Invalid '{field}': {first['msg']}.", param=field) from exc


def from_embedding_input(raw: Any) -> list[Item]:
    """Normalise ``input`` to a list of texts and token-id lists, in request order.

    A flat list of integers is one input (one token sequence), as in the OpenAI API.
    """
    if raw is None:
        raise InvalidRequest("'input' is required.", param="input")
    if isinstance(raw, str):
        if not raw:
            raise InvalidRequest("'input' must not be empty.", param="input")
        return [raw]
    if not isinstance(raw, list):
        raise InvalidRequest(_shape_message(f"got {_type_name(raw)}"), param="input")
    if not raw:
        raise InvalidRequest("'input' must not be empty.", param="input")
    if all(isinstance(item, str) for item in raw):
        return list(raw)
    if all(_is_token_id(item) for item in raw):
        return [_token_ids(raw, "input")]
    if all(isinstance(item, list) for item in raw):
        return [_token_ids(item, f"input[{index}]") for index, item in enumerate(raw)]
    kinds = sorted({_type_name(item) for item in raw})
    raise InvalidRequest(_shape_message(f"got a list mixing {', '.join(kinds)}"), param="input")


def token_id_inputs(items: list[Item]) -> list[list[int]]:
    """The token-id inputs among ``items``, in order (for the engine to decode)."""
    return [item for item in items if isinstance(item, list)]


def with_decoded(items: list[Item], decoded: list[str]) -> list[str]:
    """Replace each token-id input with its decoded text, keeping positions."""
    texts = iter(decoded)
    return [next(texts) if isinstance(item, list) else item for item in items]


def encode_base64(vector: list[float]) -> str:
    """Little-endian float32, base64: what ``encoding_format: "base64"`` means to the SDKs."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def to_embedding_response(
    vectors: list[list[float]], token_counts: list[int], *, model: str, encoding_format: str | None
) -> dict[str, Any]:
    encode = encode_base64 if encoding_format == "base64" else (lambda vector: vector)
    prompt_tokens = sum(token_counts)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": encode(vector)} for index, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _token_ids(values: list[Any], where: str) -> list[int]:
    for index, value in enumerate(values):
        if not _is_token_id(value) or value < 0:
            raise InvalidRequest(
                f"'{where}[{index}]' must be a non-negative integer token id, got {value!r}.", param="input"
            )
    return values


def _type_name(value: Any) -> str:
    return {dict: "an object", bool: "a boolean", float: "a number", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _shape_message(detail: str) -> str:
    return f"'input' must be a string, a list of strings, a list of token ids or a list of token-id lists; {detail}."


# --- route -------------------------------------------------------------------------------------


@router.post("/v1/embeddings", tags=["openai"], openapi_extra=json_body(EmbeddingRequest))
@router.post("/embeddings", include_in_schema=False)
async def create_embeddings(request: Request) -> JSONResponse:
    body = parse_embedding_request(await read_json(request))
    engine = embedding_engine(request)
    model = body.model or engine.model_names()[0]
    if not engine.serves(model):
        raise ModelNotFound(
            f"The model '{model}' does not exist here; embedding models: {', '.join(engine.model_names())}.",
            param="model",
        )
    items = from_embedding_input(body.input)
    texts = with_decoded(items, await engine.decode_token_ids(token_id_inputs(items), model))
    if body.dimensions is not None:
        await engine.load()
        check_dimensions(body.dimensions, engine.dimensions or 0)
    result = await engine.embed(texts)
    # JSONResponse directly: FastAPI's encoder would walk every float of every vector.
    return JSONResponse(
        to_embedding_response(result.vectors, result.token_counts, model=model, encoding_format=body.encoding_format)
    )
