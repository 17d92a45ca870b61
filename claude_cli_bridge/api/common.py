"""HTTP helpers every API shares: reading bodies, validating, and tying turns to clients
(priming a turn, collecting it, the streaming relay, disconnects).

Nothing here knows any API's wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
from fastapi import Request
from pydantic import BaseModel, ValidationError

from ..core import safe_json
from ..core.turn import TurnDone, TurnEvent
from ..errors import BridgeError, CliCrashed, EmbeddingUnavailable, InvalidRequest, RequestTooLarge
from . import state

if TYPE_CHECKING:
    from ..embeddings.engine import EmbeddingEngine

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
F = TypeVar("F")


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object; 413 past ``max_request_bytes``, 400 if not a JSON object or
    if ``core.safe_json`` refuses it (deep nesting, huge numbers, NUL, lone surrogates)."""
    limit = state.settings(request).max_request_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"The request body is larger than the {limit} byte limit.")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise RequestTooLarge(f"The request body is larger than the {limit} byte limit.")
    if not body.strip():
        raise InvalidRequest("The request body is empty; send a JSON object.")
    value = safe_json.loads(bytes(body))
    if not isinstance(value, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return value


def check_message_count(count: int, limit: int) -> None:
    """``MAX_MESSAGES`` counts the messages the caller sent (before any merging)."""
    if count > limit:
        raise InvalidRequest(f"Too many messages ({count}); the limit is {limit}.", param="messages")


def embedding_engine(request: Request) -> EmbeddingEngine:
    """The app's embedding engine; 503 if this server has none."""
    engine = state.embeddings(request)
    if engine is None:
        raise EmbeddingUnavailable("Embeddings are not enabled on this server (no embedding engine was configured).")
    return engine


def validate(model: type[M], body: dict[str, Any]) -> M:
    """Validate ``body`` as ``model``; a 400 whose message names the first bad field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc), param=_first_loc(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:3]:
        location = ".".join(str(part) for part in error["loc"]) or "body"
        problems.append(f"{location}: {error['msg']}")
    return "Invalid request: " + "; ".join(problems)


def _first_loc(exc: ValidationError) -> str | None:
    errors = exc.errors()
    return ".".join(str(part) for part in errors[0]["loc"]) if errors else None


async def prime(events: AsyncIterator[TurnEvent]) -> tuple[TurnEvent, AsyncIterator[TurnEvent]]:
    """Wait for a turn's first event, so errors before the first byte become HTTP statuses.

    Returns the first event and the (same) iterator for the rest.
    """
    try:
        first = await events.__anext__()
    except BaseException:
        await close_turn(events)
        raise
    return first, events


async def close_turn(events: AsyncIterator[Any]) -> None:
    """Close a turn's event iterator however its consumer ended. Shielded: a client that
    left cancels the task, and the close is what stops the CLI's answer."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await aclose()


async def unless_disconnected(request: Request, work: Awaitable[T], poll: float = 0.25) -> T:
    """Run ``work``, cancelling it if the client goes away first (non-streaming requests:
    Starlette does not cancel a handler whose client left)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                raise ClientGone()
    finally:
        if not task.done():
            task.cancel()


class ClientGone(Exception):
    """The client disconnected; nothing is sent back."""


async def collect_turn(events: AsyncIterator[TurnEvent], on_first: Callable[[], None] | None = None) -> list[TurnEvent]:
    """All events of a turn (for a non-streaming answer); ``on_first`` runs when the first
    arrives. Closes the iterator however it ends."""
    first, rest = await prime(events)
    if on_first is not None:
        on_first()
    collected = [first]
    try:
        async for event in rest:
            collected.append(event)
    finally:
        await close_turn(rest)
    if not isinstance(collected[-1], TurnDone):
        raise CliCrashed.without_result()
    return collected


class StreamWriter(Protocol[F]):
    """One API's per-stream state: neutral events in, that API's frames out."""

    @property
    def finished(self) -> bool:
        """Whether the closing frame (the turn's TurnDone) was written."""
        ...

    def on_event(self, event: TurnEvent) -> list[F]: ...

    def on_error(self, error: BridgeError) -> list[F]:
        """The in-band error frames sent when the turn fails after the first byte."""
        ...

    def closing(self) -> list[F]:
        """Frames after everything else, error or not (OpenAI's ``[DONE]``)."""
        ...


async def relay(writer: StreamWriter[F], first: TurnEvent, rest: AsyncIterator[TurnEvent]) -> AsyncIterator[F]:
    """The one streaming relay every API uses, after the first event arrived (so errors before
    the first byte were HTTP statuses). Any failure after the first byte, expected or not,
    becomes the API's in-band error and then its terminator; a turn that ends without its
    TurnDone is such a failure, never a silent success. A client that leaves cancels this
    generator, and the turn is closed (which stops the CLI's answer)."""
    try:
        for frame in writer.on_event(first):
            yield frame
        async for event in rest:
            for frame in writer.on_event(event):
                yield frame
        if not writer.finished:
            raise CliCrashed.without_result()
    except BridgeError as error:
        log.warning("turn failed mid-stream: %s", error.code or error.kind)  # no caller text in logs
        for frame in writer.on_error(error):
            yield frame
    except Exception:
        log.exception("turn failed mid-stream")
        for frame in writer.on_error(BridgeError("Internal error while streaming the answer; see the server log.")):
            yield frame
    finally:
        await close_turn(rest)
    for frame in writer.closing():
        yield frame
