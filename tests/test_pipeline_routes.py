"""The turn pipeline's per-request checks (``app.state.turn_checks``), over ASGI with a scripted
engine: every turn surface runs them before the engine, with the surface, the HTTP request and
the translated turn; a refusal renders in the surface's own error shape and never reaches the
engine; headers a check adds come back with the answer, streaming or whole, and with a refusal."""

from __future__ import annotations

import httpx
import pytest
from scripted_engine import ScriptedEngine

from claude_cli_bridge.api.app import create_app
from claude_cli_bridge.errors import Refused

pytestmark = pytest.mark.routes

CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
TURNS = [
    ("/v1/chat/completions", CHAT, "openai.chat", lambda body: body["error"]["message"]),
    (
        "/v1/completions",
        {"model": "sonnet", "prompt": "hi"},
        "openai.completions",
        lambda body: body["error"]["message"],
    ),
    ("/v1/responses", {"model": "sonnet", "input": "hi"}, "openai.responses", lambda body: body["error"]["message"]),
    ("/v1/messages", {**CHAT, "max_tokens": 16}, "anthropic.messages", lambda body: body["error"]["message"]),
    ("/api/chat", {**CHAT, "stream": False}, "ollama.chat", lambda body: body["error"]),
    (
        "/api/generate",
        {"model": "sonnet", "prompt": "hi", "stream": False},
        "ollama.generate",
        lambda body: body["error"],
    ),
]


def bridge(engine: ScriptedEngine, seen: list) -> httpx.AsyncClient:
    app = create_app(engine.settings, engine)

    async def check(context):
        seen.append((context.surface.name, context.turn.model, context.request.headers.get("x-caller")))
        context.headers["X-Bridge-Account"] = "account-1"
        if context.request.headers.get("x-caller") == "blocked":
            raise Refused("This caller may not use this model.")

    app.state.turn_checks.append(check)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t")


@pytest.mark.parametrize(("path", "body", "surface", "message_of"), TURNS)
async def test_checks_see_every_surface_and_their_headers_come_back(path, body, surface, message_of):
    engine, seen = ScriptedEngine(), []
    async with bridge(engine, seen) as client:
        response = await client.post(path, json=body, headers={"x-caller": "alice"})
    assert response.status_code == 200 and response.headers["x-bridge-account"] == "account-1"
    assert seen == [(surface, "sonnet", "alice")] and len(engine.requests) == 1


@pytest.mark.parametrize(("path", "body", "surface", "message_of"), TURNS)
async def test_a_refusing_check_answers_in_the_surface_shape_before_the_engine(path, body, surface, message_of):
    engine, seen = ScriptedEngine(), []
    async with bridge(engine, seen) as client:
        response = await client.post(path, json=body, headers={"x-caller": "blocked"})
    assert response.status_code == 403 and response.headers["x-bridge-account"] == "account-1"
    assert message_of(response.json()) == "This caller may not use this model."
    assert engine.requests == []


async def test_a_streaming_answer_carries_the_headers_too():
    engine, seen = ScriptedEngine(), []
    async with bridge(engine, seen) as client:
        async with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
            text = "".join([chunk async for chunk in response.aiter_text()])
    assert response.headers["x-bridge-account"] == "account-1" and "[DONE]" in text


async def test_a_model_load_request_needs_no_turn_and_runs_no_check():
    engine, seen = ScriptedEngine(), []
    async with bridge(engine, seen) as client:
        response = await client.post("/api/chat", json={"model": "sonnet", "messages": []})
    assert response.status_code == 200 and response.json()["done_reason"] == "load" and seen == []
