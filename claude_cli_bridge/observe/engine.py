"""The engine as the app sees it: every turn fills the current request's record.

``ObservedEngine`` wraps the real engine (or a test double) and, for each turn, notes in the
request's ``RequestRecord`` the model, the time to the first event, the TurnDone's tokens and
how the CLI process was found, and a failure (its code and kind, never its message: see
``loggable``) with whether it happened after the first byte.
The engine's other methods (start, close, status, resolve_model) are passed through; nothing
else is (``create_app`` takes what it needs of the real engine itself).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..core.record import RequestRecord, current_record
from ..core.status import BridgeStatus
from ..core.turn import Engine, TurnDone, TurnEvent, TurnRequest
from ..errors import BridgeError


class ObservedEngine:
    def __init__(self, inner: Engine):
        self.inner = inner

    def resolve_model(self, requested: str | None) -> str:
        return self.inner.resolve_model(requested)

    def status(self) -> BridgeStatus:
        return self.inner.status()

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def stream(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        record = current_record.get()
        events = self.inner.stream(request)
        if record is None:
            async for event in events:
                yield event
            return
        record.turn = True
        try:
            record.model = self.inner.resolve_model(request.model)
        except BridgeError:
            record.model = ""  # a name nobody serves is the caller's text, not a model
        try:
            async for event in events:
                record.mark_first()
                if isinstance(event, TurnDone):
                    _note_done(record, event)
                yield event
        except BridgeError as error:
            record.error = loggable(error)
            if record.first_token_s is not None:  # reported in-band, inside a 200
                record.in_band_error, record.status = True, error.status
            raise
        except Exception as error:
            record.error = f"internal: {type(error).__name__}"
            if record.first_token_s is not None:
                record.in_band_error, record.status = True, 500
            raise
        finally:
            # Closing this wrapper must close the turn itself (that is what stops the CLI).
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()


def loggable(error: BridgeError) -> str:
    """The log copy of an error: its code and kind, never its message. Messages quote what the
    caller sent (tool names, model names, values) to help the caller; the log carries nothing
    a caller sent unless LOG_CONTENT is on. ``metrics`` reads the code before the colon."""
    return f"{error.code}: {error.kind}" if error.code else error.kind


def _note_done(record: RequestRecord, done: TurnDone) -> None:
    record.usage = done.usage
    record.stop_reason = done.stop_reason
    record.upstream_model = done.model
    record.how = done.how or record.how  # the engine notes it at the lease already
    if "load_ns" in done.timings:
        record.wait_s = done.timings["load_ns"] / 1e9
