"""Hostile request bodies get a 4xx in the API's own error shape, never a 500, and the server
answers the next request. Route tier: the app over ASGI with a scripted engine."""

from __future__ import annotations

import json

import pytest
from scripted_engine import ScriptedEngine, client_for

pytestmark = pytest.mark.routes

NUL = "\\u0000"  # as JSON escapes, written into raw bodies
SURROGATE = "\\ud800"


def chat(**fields) -> str:
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}], **fields}
    return json.dumps(body)


def raw_chat(fragment: str) -> str:
    """A chat body with ``fragment`` (raw JSON text) spliced in as a field."""
    return '{"model": "sonnet", "messages": [{"role": "user", "content": "hi"}], ' + fragment + "}"


OPENAI_BODIES = {
    "nul in system": '{"model":"sonnet","messages":[{"role":"system","content":"a'
    + NUL
    + 'b"},{"role":"user","content":"hi"}]}',
    "surrogate in system": '{"model":"sonnet","messages":[{"role":"system","content":"a'
    + SURROGATE
    + '"},{"role":"user","content":"hi"}]}',
    "nul in model": '{"model":"son' + NUL + 'net","messages":[{"role":"user","content":"hi"}]}',
    "surrogate in model": '{"model":"' + SURROGATE + '","messages":[{"role":"user","content":"hi"}]}',
    "nul in schema": raw_chat(
        '"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","description":"'
        + NUL
        + '"}}}'
    ),
    "surrogate in schema key": raw_chat(
        '"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"'
        + SURROGATE
        + '":{}}}}}'
    ),
    "nul beside tool results": '{"model":"sonnet","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"r"},{"role":"user","content":"x'
    + NUL
    + '"}]}',
    "deep nesting": '{"model":"sonnet","messages":' + "[" * 5000 + "]" * 5000 + "}",
    "deep nesting within limits of the decoder": '{"model":"sonnet","messages":[{"role":"user","content":"hi"}],"x":'
    + "[" * 500
    + "]" * 500
    + "}",
    "huge integer": raw_chat('"max_tokens":' + "9" * 5000),
    "huge float": raw_chat('"temperature":1e999'),
    "NaN": raw_chat('"temperature":NaN'),
    "tool arguments nested deeply": '{"model":"sonnet","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"'
    + "[" * 3000
    + "]" * 3000
    + '"}}]},{"role":"user","content":"go"}]}',
    "surrogate in embedding input": '{"model":"text-embedding-3-small","input":"a' + SURROGATE + '"}',
}

OLLAMA_BODIES = {
    "nul in format": (
        "/api/chat",
        '{"model":"sonnet","stream":false,"format":{"type":"object","title":"'
        + NUL
        + '"},"messages":[{"role":"user","content":"hi"}]}',
    ),
    "surrogate in system": (
        "/api/generate",
        '{"model":"sonnet","stream":false,"system":"' + SURROGATE + '","prompt":"hi"}',
    ),
    "nul in system": ("/api/generate", '{"model":"sonnet","stream":false,"system":"' + NUL + '","prompt":"hi"}'),
    "surrogate in show name": ("/api/show", '{"model":"' + SURROGATE + '"}'),
    "surrogate in embed input": ("/api/embed", '{"model":"all-minilm","input":["' + SURROGATE + '"]}'),
    "surrogate in legacy embeddings": ("/api/embeddings", '{"model":"all-minilm","prompt":"' + SURROGATE + '"}'),
    "deep nesting": ("/api/chat", '{"model":"sonnet","messages":' + "[" * 5000 + "]" * 5000 + "}"),
    "huge integer": (
        "/api/chat",
        '{"model":"sonnet","options":{"num_predict":' + "1" * 5000 + '},"messages":[{"role":"user","content":"hi"}]}',
    ),
}


@pytest.mark.parametrize("name", OPENAI_BODIES)
async def test_openai_hostile_bodies_get_a_4xx_in_openai_shape(name):
    engine = ScriptedEngine()
    path = "/v1/embeddings" if "embedding" in name else "/v1/chat/completions"
    async with client_for(engine) as client:
        response = await client.post(path, content=OPENAI_BODIES[name], headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, response.text
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["type"] == "invalid_request_error"
        assert "Traceback" not in response.text
        follow_up = await client.post(
            "/v1/chat/completions", content=chat(), headers={"content-type": "application/json"}
        )
        assert follow_up.status_code == 200
    assert not engine.requests or engine.requests[-1].messages[-1].text == "hi"  # nothing hostile went on


@pytest.mark.parametrize("name", OLLAMA_BODIES)
async def test_ollama_hostile_bodies_get_a_4xx_in_ollama_shape(name):
    path, body = OLLAMA_BODIES[name]
    async with client_for(ScriptedEngine()) as client:
        response = await client.post(path, content=body, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, response.text
        assert isinstance(response.json()["error"], str)
        follow_up = await client.post(
            "/api/chat", json={"model": "sonnet", "stream": False, "messages": [{"role": "user", "content": "hi"}]}
        )
        assert follow_up.status_code == 200


async def test_max_messages_counts_the_messages_the_caller_sent():
    settings = ScriptedEngine().settings.model_copy(update={"max_messages": 2000})
    engine = ScriptedEngine(settings=settings)
    messages = [{"role": "user", "content": f"m{n}"} for n in range(2001)]  # merged, they would be one
    async with client_for(engine) as client:
        openai = await client.post("/v1/chat/completions", json={"model": "sonnet", "messages": messages})
        assert openai.status_code == 400 and "2001" in openai.json()["error"]["message"]
        ollama = await client.post("/api/chat", json={"model": "sonnet", "stream": False, "messages": messages})
        assert ollama.status_code == 400 and "2001" in ollama.json()["error"]
        fits = await client.post("/v1/chat/completions", json={"model": "sonnet", "messages": messages[:2000]})
        assert fits.status_code == 200
    assert len(engine.requests) == 1


async def test_oversized_bodies_and_too_many_messages_are_refused():
    settings = ScriptedEngine().settings.model_copy(update={"max_request_bytes": 2000, "max_messages": 3})
    engine = ScriptedEngine(settings=settings)
    async with client_for(engine) as client:
        big = await client.post(
            "/v1/chat/completions", json={"model": "sonnet", "messages": [{"role": "user", "content": "x" * 5000}]}
        )
        assert big.status_code == 413 and "limit" in big.json()["error"]["message"]
        many = await client.post(
            "/v1/chat/completions",
            json={
                "model": "sonnet",
                "messages": [{"role": r, "content": "x"} for r in ["user", "assistant"] * 2 + ["user"]],
            },
        )
        assert many.status_code == 400 and "Too many messages" in many.json()["error"]["message"]
    assert not engine.requests
