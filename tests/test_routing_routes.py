"""What a router in front of several bridges needs, through every API's routes (scripted
engine over ASGI): the conversation id and how the process was found on every turn's
response, draining (/health 503, new turns 503 + Retry-After, running ones finish) and the
readiness check. The pool's side of the id is in test_pool_unit.py, the whole path with the
real CLI and a real LiteLLM proxy in test_routing_e2e.py."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from scripted_engine import ScriptedEngine, client_for, text_turn

from claude_cli_bridge.core.record import note
from claude_cli_bridge.core.turn import TextDelta, TurnEvent, TurnRequest
from claude_cli_bridge.settings import Settings

pytestmark = pytest.mark.routes

SURFACES = {
    "chat": ("/v1/chat/completions", {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}),
    "responses": ("/v1/responses", {"model": "sonnet", "input": "hi"}),
    "messages": (
        "/v1/messages",
        {"model": "sonnet", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
    ),
    "ollama": ("/api/chat", {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}),
    "generate": ("/api/generate", {"model": "sonnet", "prompt": "hi"}),
    "completions": ("/v1/completions", {"model": "sonnet", "prompt": "hi"}),
}


@dataclasses.dataclass
class LeasingEngine(ScriptedEngine):
    """Notes what BridgeEngine notes once it has leased a process (engine/bridge.py)."""

    async def stream(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        note(conversation_id=request.conversation_key or "conv-chosen-by-pool", how="held")
        async for event in super().stream(request):
            yield event


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("surface", SURFACES)
async def test_every_turn_returns_the_conversation_id_and_how_it_was_served(surface, stream):
    path, body = SURFACES[surface]
    async with client_for(LeasingEngine()) as client:
        chosen = await client.post(path, json={**body, "stream": stream})
        echoed = await client.post(path, json={**body, "stream": stream}, headers={"x-conversation-id": "mine-1"})
    assert chosen.status_code == 200, chosen.text
    assert chosen.headers["x-conversation-id"] == "conv-chosen-by-pool"
    assert chosen.headers["x-bridge-process"] == "held"
    assert echoed.headers["x-conversation-id"] == "mine-1"


async def test_an_id_that_is_no_header_value_is_not_echoed():
    body = {**SURFACES["chat"][1], "id": "a\r\nset-cookie: x"}
    async with client_for(LeasingEngine()) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert "x-conversation-id" not in response.headers and "set-cookie" not in response.headers


async def test_requests_without_a_turn_carry_no_conversation_id():
    async with client_for(LeasingEngine()) as client:
        response = await client.get("/v1/models")
    assert "x-conversation-id" not in response.headers


@pytest.mark.parametrize(
    "path, body, status, shape",
    [
        (*SURFACES["chat"], 503, lambda j: j["error"]["code"] == "draining"),
        (*SURFACES["responses"], 503, lambda j: j["error"]["code"] == "draining"),
        (*SURFACES["ollama"], 503, lambda j: "shutting down" in j["error"]),
        (*SURFACES["messages"], 503, lambda j: j["error"]["type"] == "overloaded_error"),
    ],
)
async def test_while_draining_new_turns_are_refused_with_retry_after(path, body, status, shape):
    engine = LeasingEngine()
    async with client_for(engine, Settings(_env_file=None, drain_retry_after_seconds=42)) as client:
        client._transport.app.state.drain.begin()  # type: ignore[attr-defined]
        response = await client.post(path, json=body)
        models = await client.get("/v1/models")
    assert response.status_code == status and shape(response.json())
    assert response.headers["retry-after"] == "42"
    assert not engine.requests  # refused before any work
    assert models.status_code == 200  # reading goes on


async def test_health_says_draining_with_503_at_once():
    async with client_for(LeasingEngine(), Settings(_env_file=None, bridge_api_key="k")) as client:
        before = await client.get("/health")
        client._transport.app.state.drain.begin()  # type: ignore[attr-defined]
        after = await client.get("/health")
    assert before.status_code == 200 and before.json()["status"] == "ok"
    assert after.status_code == 503 and after.json()["status"] == "draining"
    assert "pool" not in after.json()  # still open to anyone, still without details


async def test_a_turn_in_flight_finishes_while_draining():
    started = asyncio.Event()
    engine = LeasingEngine(script=lambda request: (started.set(), [TextDelta("one"), 0.3, *text_turn(" two")])[1])
    async with client_for(engine) as client:
        app = client._transport.app  # type: ignore[attr-defined]
        running = asyncio.create_task(client.post("/v1/chat/completions", json={**SURFACES["chat"][1], "stream": True}))
        await started.wait()
        assert app.state.drain.in_flight == 1
        app.state.drain.begin()
        refused = await client.post("/v1/chat/completions", json=SURFACES["chat"][1])
        response = await running
    assert refused.status_code == 503
    assert response.status_code == 200 and "two" in response.text and "[DONE]" in response.text
    assert app.state.drain.in_flight == 0


class StatusEngine(LeasingEngine):
    def __init__(self, **status):
        super().__init__()
        self.extra = status

    def status(self):
        from claude_cli_bridge.core.status import BridgeStatus

        return BridgeStatus.from_json({**super().status().as_json(), **self.extra})


@pytest.mark.parametrize(
    "status, reasons, retry_after",
    [
        ({}, [], None),
        ({"pool": {"waiting": 32}}, ["queue_full"], "2"),
        ({"pool": {"waiting": 3, "backoff": {"default": {"seconds_left": 7.2}}}}, ["cli_failing"], "8"),
        (
            {
                "subscription": {
                    "status": "rejected",
                    "limiting": "five_hour",
                    "windows": {"five_hour": {"resets_in_seconds": 600, "reset_passed": False}},
                }
            },
            ["account_refused"],
            "600",
        ),
        ({"subscription": {"status": "allowed", "limiting": "five_hour", "windows": {}}}, [], None),
        (
            {"accounts": {"a": {"state": "refused", "available_in_s": 900}, "b": {"state": "ok"}}},
            [],
            None,
        ),
        (
            {
                "accounts": {
                    "a": {"state": "refused", "available_in_s": 900},
                    "b": {"state": "failing", "available_in_s": 60},
                }
            },
            ["account_refused"],
            "60",
        ),
    ],
)
async def test_ready_says_whether_a_turn_would_be_taken_now(status, reasons, retry_after):
    engine = StatusEngine(**status)
    async with client_for(engine, Settings(_env_file=None, bridge_api_key="k", queue_size=32)) as client:
        response = await client.get("/ready")  # open, like /health: it reveals nothing
    assert response.json() == {"ready": not reasons, "reasons": reasons}
    assert response.status_code == (503 if reasons else 200)
    assert response.headers.get("retry-after") == retry_after
    assert not engine.requests  # no turn, no quota


async def test_ready_says_draining():
    async with client_for(LeasingEngine()) as client:
        client._transport.app.state.drain.begin()  # type: ignore[attr-defined]
        response = await client.get("/ready")
    assert response.status_code == 503 and response.json()["reasons"] == ["draining"]
    assert response.headers["retry-after"] == "30"
