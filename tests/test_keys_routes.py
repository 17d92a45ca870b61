"""Client keys over ASGI with a scripted engine: a key from the accounts file is who the
request is (its name on the TurnRequest), unknown keys get 401 in each API's shape, and the
key's ``models``, ``max_concurrent`` and ``requests_per_minute`` refuse in each surface's
shape before the engine is called. Stored responses belong to the key that made them."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from scripted_engine import ScriptedEngine, text_turn

from claude_cli_bridge.accounts.config import Account, AccountsConfig, ClientKey
from claude_cli_bridge.accounts.keys import sha256_hex
from claude_cli_bridge.api.app import create_app
from claude_cli_bridge.core.caller import Caller
from claude_cli_bridge.settings import Settings

pytestmark = pytest.mark.routes

ALICE, BOB, CI = "ccb-alice-key-1", "ccb-bob-key-2", "ccb-ci-key-3"
ACCOUNTS = AccountsConfig(
    (Account("a", "oauth_token", "TOKEN_A"), Account("b", "oauth_token", "TOKEN_B")),
    (
        ClientKey(sha256_hex(ALICE), Caller("alice", ("a", "b"))),
        ClientKey(sha256_hex(BOB), Caller("bob", ("b",))),
        ClientKey(sha256_hex(CI), Caller("ci", ("b",), models=("haiku",), max_concurrent=1, requests_per_minute=3)),
    ),
)
CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
# (path, body with the model, how the error message is found, the 429 kind of that API)
SURFACES = [
    ("/v1/chat/completions", CHAT, lambda b: b["error"]["message"]),
    ("/v1/completions", {"model": "sonnet", "prompt": "hi"}, lambda b: b["error"]["message"]),
    ("/v1/responses", {"model": "sonnet", "input": "hi"}, lambda b: b["error"]["message"]),
    ("/v1/messages", {**CHAT, "max_tokens": 16}, lambda b: b["error"]["message"]),
    ("/api/chat", {**CHAT, "stream": False}, lambda b: b["error"]),
    ("/api/generate", {"model": "sonnet", "prompt": "hi", "stream": False}, lambda b: b["error"]),
]


def client(engine: ScriptedEngine, **settings) -> httpx.AsyncClient:
    app = create_app(Settings(_env_file=None, **settings), engine, accounts=ACCOUNTS)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t")


def as_key(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_a_known_key_is_its_callers_name_and_accounts_on_the_turn():
    engine = ScriptedEngine()
    async with client(engine) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=as_key(BOB))
        anthropic = await http.post("/v1/messages", json={**CHAT, "max_tokens": 9}, headers={"x-api-key": ALICE})
    assert response.status_code == 200 and anthropic.status_code == 200
    bob, alice = engine.requests
    assert (bob.caller.name, bob.caller.accounts) == ("bob", ("b",))
    assert (alice.caller.name, alice.caller.accounts) == ("alice", ("a", "b"))


@pytest.mark.parametrize(("path", "body", "message_of"), SURFACES)
async def test_an_unknown_key_is_a_401_in_the_apis_shape(path, body, message_of):
    engine = ScriptedEngine()
    async with client(engine) as http:
        response = await http.post(path, json=body, headers=as_key("ccb-wrong"))
    assert response.status_code == 401
    assert "invalid API key" in message_of(response.json()) and "ccb-wrong" not in response.text
    assert engine.requests == []


@pytest.mark.parametrize(("path", "body", "message_of"), SURFACES)
async def test_a_model_the_key_may_not_use_is_a_403_naming_the_key_and_the_model(path, body, message_of):
    engine = ScriptedEngine()
    async with client(engine) as http:
        refused = await http.post(path, json=body, headers=as_key(CI))
        allowed = await http.post(path, json={**body, "model": "haiku"}, headers=as_key(CI))
    assert refused.status_code == 403, refused.text
    message = message_of(refused.json())
    assert "'ci'" in message and "'sonnet'" in message and "haiku" in message
    assert allowed.status_code == 200 and len(engine.requests) == 1


@pytest.mark.parametrize(("path", "body", "message_of"), SURFACES)
async def test_max_concurrent_refuses_one_more_turn_at_once_with_retry_after(path, body, message_of):
    started, finish = asyncio.Event(), asyncio.Event()

    def script(request):
        return [0.0, *text_turn("slow")]

    class Slow(ScriptedEngine):
        async def stream(self, request):
            started.set()
            await finish.wait()
            async for event in super().stream(request):
                yield event

    engine = Slow(script=script)
    body = {**body, "model": "haiku"}
    async with client(engine) as http:
        first = asyncio.create_task(http.post(path, json=body, headers=as_key(CI)))
        await started.wait()
        second = await http.post(path, json=body, headers=as_key(CI))
        finish.set()
        assert (await first).status_code == 200
        third = await http.post(path, json=body, headers=as_key(CI))  # the slot is free again
    assert second.status_code == 429 and second.headers["retry-after"] == "1"
    assert "max_concurrent" in message_of(second.json())
    assert third.status_code == 200


async def test_requests_per_minute_refuses_with_the_seconds_until_a_slot_frees():
    engine = ScriptedEngine()
    body = {**CHAT, "model": "haiku"}
    async with client(engine) as http:
        answers = [await http.post("/v1/chat/completions", json=body, headers=as_key(CI)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 55 <= int(answers[-1].headers["retry-after"]) <= 60
    error = answers[-1].json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert "requests_per_minute" in error["message"]


async def test_a_stored_response_belongs_to_the_key_that_made_it():
    engine = ScriptedEngine()
    async with client(engine) as http:
        made = await http.post("/v1/responses", json={"model": "sonnet", "input": "hi"}, headers=as_key(ALICE))
        response_id = made.json()["id"]
        for method in ("GET", "DELETE"):
            other = await http.request(method, f"/v1/responses/{response_id}", headers=as_key(BOB))
            assert other.status_code == 404 and response_id in other.json()["error"]["message"]
        follow = await http.post(
            "/v1/responses",
            json={"model": "sonnet", "input": "more", "previous_response_id": response_id},
            headers=as_key(BOB),
        )
        assert follow.status_code == 404
        mine = await http.get(f"/v1/responses/{response_id}", headers=as_key(ALICE))
        assert mine.status_code == 200 and mine.json()["id"] == response_id


async def test_records_carry_the_keys_name_never_the_key(tmp_path):
    engine = ScriptedEngine()
    async with client(engine, data_dir=tmp_path) as http:
        await http.post("/v1/chat/completions", json=CHAT, headers=as_key(ALICE))
        await http.post("/v1/chat/completions", json=CHAT, headers=as_key("ccb-wrong"))
        metrics = (await http.get("/metrics", headers=as_key(ALICE))).text
    ledger = "".join(path.read_text() for path in tmp_path.glob("*.jsonl"))
    assert '"key_label": "alice"' in ledger and '"key_label": "invalid"' in ledger
    assert 'key="alice"' in metrics
    for secret in (ALICE, sha256_hex(ALICE), "ccb-wrong"):
        assert secret not in ledger and secret not in metrics
