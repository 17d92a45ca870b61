"""The route tier's engine: scripted turns, no CLI. Injected into ``create_app`` and driven
over ``httpx.ASGITransport``, so HTTP behaviour (shapes, statuses, relays' error paths) is
tested fast and exactly. What the real CLI does is tested end to end elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from claude_cli_bridge.api.app import create_app
from claude_cli_bridge.core.models import resolve_model
from claude_cli_bridge.core.status import BridgeStatus
from claude_cli_bridge.core.turn import TextDelta, TurnDone, TurnEvent, TurnRequest, Usage
from claude_cli_bridge.errors import UpstreamError
from claude_cli_bridge.settings import Settings

Script = Callable[[TurnRequest], list[Any]]


DEFAULT_USAGE = Usage(5, 3)


# A turn that fails after its first byte, three ways: what each stream writer must end in its
# API's in-band error.
FAILURES = {
    "bridge error": [TextDelta("partial"), UpstreamError("Upstream overloaded: busy", status=503, retry=True)],
    "unexpected exception": [TextDelta("partial"), RuntimeError("boom")],
    "no TurnDone": [TextDelta("partial")],
}


def text_turn(*chunks: str, stop: str = "end_turn", usage: Usage = DEFAULT_USAGE) -> list[Any]:
    return [*(TextDelta(chunk) for chunk in chunks), TurnDone(stop, usage, "claude-scripted")]


@dataclass
class ScriptedEngine:
    """Answers each turn with ``script(request)``: a list of events, where an exception
    instance is raised at that point (before or after the first event)."""

    settings: Settings = field(default_factory=lambda: Settings(_env_file=None))
    script: Script = lambda request: text_turn("Hello", " world")
    requests: list[TurnRequest] = field(default_factory=list)
    closed_turns: int = 0

    async def stream(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        self.requests.append(request)
        try:
            for item in self.script(request):
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, (int, float)) and not isinstance(item, bool):
                    await asyncio.sleep(item)
                    continue
                yield item
        finally:
            self.closed_turns += 1

    def resolve_model(self, requested: str | None) -> str:
        return resolve_model(
            requested, self.settings.default_model, self.settings.legacy_models, self.settings.model_alias_map()
        )

    def status(self) -> BridgeStatus:
        return BridgeStatus(status="ok", cli_version="scripted")

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


def transport_for(
    engine: ScriptedEngine, settings: Settings | None = None, embeddings: Any = None
) -> httpx.ASGITransport:
    """The app over ASGI, for a client of one's own (an SDK's: ``ollama.AsyncClient(host=...,
    transport=transport_for(engine))``)."""
    app = create_app(settings or engine.settings, engine, embeddings)
    return httpx.ASGITransport(app=app, raise_app_exceptions=False)


def client_for(engine: ScriptedEngine, settings: Settings | None = None, embeddings: Any = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport_for(engine, settings, embeddings), base_url="http://bridge.test")


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE frame."""
    events = []
    for chunk in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in chunk.splitlines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        if data:
            events.append((name, "\n".join(data)))
    return events
