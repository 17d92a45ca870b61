"""OpenAI legacy Completions (``POST /v1/completions``): request model and pure converters.

The prompt is one user turn (a chat model answers it; it does not continue the text
token by token), ``suffix`` asks for the text between prompt and suffix (core.fim, as Ollama's
``/api/generate`` does). What cannot be honoured is refused: several prompts or token-id
prompts, ``echo``, ``n``/``best_of`` above 1, ``logprobs``. Responses are ``text_completion``
objects; stream chunks have the same shape with text deltas, then ``data: [DONE]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ...core.fim import fill_in_the_middle
from ...core.messages import Message, TextBlock
from ...core.turn import TextDelta, TurnDone, TurnEvent, TurnRequest, Usage
from ...errors import BridgeError, CliCrashed, InvalidRequest
from ..parts import new_id
from .translate import DONE, error_body, finish_reason
from .translate import usage_dict as chat_usage_dict

Frame = dict[str, Any] | str


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    prompt: str | list[Any] | None = None
    """A string, or a list holding exactly one string."""

    suffix: str | None = None
    """Text after the insertion point: the answer is what goes between prompt and suffix."""

    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    echo: bool | None = None
    """Only false: the bridge cannot return the prompt as the model's tokens."""

    n: int | None = Field(default=None, ge=1)
    best_of: int | None = Field(default=None, ge=1)
    logprobs: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None


def from_completion_request(request: CompletionRequest, *, conversation_key: str | None = None) -> TurnRequest:
    """The neutral request: one user turn (with ``suffix``, a fill-in-the-middle turn)."""
    prompt = _prompt(request.prompt)
    if request.echo:
        raise InvalidRequest("echo is not supported: the prompt cannot be returned as model tokens.", param="echo")
    for name in ("n", "best_of"):
        value = getattr(request, name)
        if value is not None and value > 1:
            raise InvalidRequest(
                f"{name} > 1 is not supported: the Claude CLI gives one answer per request.", param=name
            )
    if request.logprobs:
        raise InvalidRequest(
            "logprobs are not supported: the Claude CLI reports no token probabilities.", param="logprobs"
        )
    system = None
    text = prompt
    if request.suffix:
        text, system = fill_in_the_middle(prompt, request.suffix, None)
    if not text:
        raise InvalidRequest("prompt is empty.", param="prompt")
    stop = request.stop if isinstance(request.stop, list) else ([request.stop] if request.stop else [])
    return TurnRequest(
        model=request.model or "",
        messages=[Message("user", (TextBlock(text),))],
        system=system,
        max_tokens=request.max_tokens,
        stop=tuple(s for s in stop if s),
        conversation_key=conversation_key,
    )


def _prompt(prompt: str | list[Any] | None) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and not all(isinstance(item, str) for item in prompt):
        raise InvalidRequest("prompt must be a string (token-id prompts are not supported).", param="prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        return str(prompt[0])
    if isinstance(prompt, list) and len(prompt) > 1:
        raise InvalidRequest(
            f"prompt holds {len(prompt)} prompts; send one per request (the Claude CLI answers one at a time).",
            param="prompt",
        )
    if prompt is None:
        raise InvalidRequest("prompt is required.", param="prompt")
    raise InvalidRequest("prompt must be a string (token-id prompts are not supported).", param="prompt")


def new_completion_id() -> str:
    return new_id("cmpl-")


def usage_dict(usage: Usage) -> dict[str, Any]:
    """Chat's usage without ``prompt_tokens_details``, which ``text_completion`` objects lack."""
    body = chat_usage_dict(usage)
    del body["prompt_tokens_details"]
    return body


def _object(completion_id: str, created: int, model: str, text: str, finish: str | None) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
    }


def to_completion(events: list[TurnEvent], *, model: str, completion_id: str, created: int) -> dict[str, Any]:
    text = "".join(event.text for event in events if isinstance(event, TextDelta))
    done = next((event for event in events if isinstance(event, TurnDone)), None)
    if done is None:
        raise CliCrashed.without_result()
    body = _object(completion_id, created, model, text, finish_reason(done.stop_reason))
    body["usage"] = usage_dict(done.usage)
    return body


@dataclass
class CompletionChunkWriter:
    """Per-stream state: text deltas become ``text_completion`` chunks; the turn's end a chunk
    with ``finish_reason`` (and, with ``stream_options.include_usage``, a usage chunk with
    empty ``choices``); ``[DONE]`` closes the stream, error or not."""

    model: str
    include_usage: bool = False
    completion_id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    finished: bool = False

    def on_event(self, event: TurnEvent) -> list[Frame]:
        if isinstance(event, TextDelta):
            return [_object(self.completion_id, self.created, self.model, event.text, None)] if event.text else []
        if isinstance(event, TurnDone):
            self.finished = True
            chunks: list[Frame] = [
                _object(self.completion_id, self.created, self.model, "", finish_reason(event.stop_reason))
            ]
            if self.include_usage:
                usage = _object(self.completion_id, self.created, self.model, "", None)
                usage.update(choices=[], usage=usage_dict(event.usage))
                chunks.append(usage)
            return chunks
        return []

    def on_error(self, error: BridgeError) -> list[Frame]:
        return [error_body(error)]

    def closing(self) -> list[Frame]:
        return [DONE]
