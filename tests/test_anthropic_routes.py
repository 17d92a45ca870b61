"""The Anthropic Messages routes over ASGI with a scripted engine: the message and its stream's
event sequence, statuses and error shapes before and after the first byte, bad bodies, keys."""

from __future__ import annotations

import json

import pytest
from scripted_engine import FAILURES, ScriptedEngine, client_for, sse_events

from claude_cli_bridge.core.turn import TextDelta, ToolCall, TurnDone, Usage
from claude_cli_bridge.errors import CliCrashed, InvalidRequest, PoolBusy, UpstreamError
from claude_cli_bridge.settings import Settings

pytestmark = pytest.mark.routes

MESSAGES = {"model": "sonnet", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


# -- Anthropic Messages ------------------------------------------------------------------------
async def test_messages_non_streaming_message_with_tool_use_and_usage():
    def script(request):
        return [
            TextDelta("Checking."),
            ToolCall("toolu_2", "get_weather", {"city": "Paris"}),
            TurnDone("tool_use", Usage(12, 5, 3, 1)),
        ]

    engine = ScriptedEngine(script=script)
    body = {**MESSAGES, "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]}
    async with client_for(engine) as client:
        message = (await client.post("/v1/messages", json=body)).json()
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert message["stop_reason"] == "tool_use" and message["stop_sequence"] is None
    assert message["usage"] == {
        "input_tokens": 12,
        "cache_creation_input_tokens": 1,
        "cache_read_input_tokens": 3,
        "output_tokens": 5,
    }


async def test_messages_stream_event_sequence():
    def script(request):
        return [
            TextDelta("a"),
            TextDelta("b"),
            ToolCall("t1", "f", {}),
            TurnDone("tool_use", Usage(2, 3)),
        ]

    engine = ScriptedEngine(script=script)
    body = {**MESSAGES, "stream": True, "tools": [{"name": "f", "input_schema": {"type": "object"}}]}
    async with client_for(engine) as client:
        events = sse_events((await client.post("/v1/messages", json=body)).text)
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    datas = [json.loads(data) for _, data in events]
    assert all(d["type"] == name for (name, _), d in zip(events, datas, strict=True))
    assert datas[7]["delta"] == {"type": "input_json_delta", "partial_json": "{}"}
    assert datas[9]["usage"]["input_tokens"] == 2 and datas[9]["usage"]["output_tokens"] == 3


async def test_messages_stop_sequence_is_named():
    engine = ScriptedEngine(
        script=lambda request: [TextDelta("x"), TurnDone("stop_sequence", Usage(1, 1), stop_sequence="END")]
    )
    async with client_for(engine) as client:
        message = (await client.post("/v1/messages", json={**MESSAGES, "stop_sequences": ["END", "STOP"]})).json()
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")
    assert engine.requests[0].stop == ("END", "STOP")


@pytest.mark.parametrize("failure", FAILURES)
async def test_messages_stream_failure_is_an_error_event(failure):
    engine = ScriptedEngine(script=lambda request: FAILURES[failure])
    async with client_for(engine) as client:
        response = await client.post("/v1/messages", json={**MESSAGES, "stream": True})
    events = sse_events(response.text)
    name, data = events[-1]
    assert name == "error"
    body = json.loads(data)
    assert body["type"] == "error" and body["error"]["type"] and "boom" not in body["error"]["message"]
    assert not any(name == "message_stop" for name, _ in events)
    assert engine.closed_turns == 1


@pytest.mark.parametrize(
    "error, status, kind",
    [
        (InvalidRequest("bad"), 400, "invalid_request_error"),
        (PoolBusy("busy", retry_after=2), 529, "overloaded_error"),
        (UpstreamError("Upstream overloaded", status=503, retry=True, retry_after=10), 529, "overloaded_error"),
        (UpstreamError("Upstream rate limit", status=429, retry=True, retry_after=30), 429, "rate_limit_error"),
        (UpstreamError("auth", status=401), 401, "authentication_error"),
        (CliCrashed("gone"), 502, "api_error"),
    ],
)
async def test_messages_errors_before_the_first_byte_are_anthropic_statuses(error, status, kind):
    engine = ScriptedEngine(script=lambda request: [error])
    async with client_for(engine) as client:
        for stream in (False, True):
            response = await client.post("/v1/messages", json={**MESSAGES, "stream": stream})
            assert response.status_code == status
            assert response.json() == {"type": "error", "error": {"type": kind, "message": error.message}}


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({k: v for k, v in MESSAGES.items() if k != "max_tokens"}, "max_tokens"),
        ({**MESSAGES, "messages": []}, "messages"),
        (
            {**MESSAGES, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "document sources",
        ),
        (
            {**MESSAGES, "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "pre"}]},
            "prefill",
        ),
        ({**MESSAGES, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search"),
        ({**MESSAGES, "model": "gpt-4o"}, "gpt-4o"),
    ],
)
async def test_messages_bad_bodies_get_4xx_in_anthropic_shape(body, fragment):
    async with client_for(ScriptedEngine()) as client:
        response = await client.post("/v1/messages", json=body)
    assert 400 <= response.status_code < 500
    assert response.json()["type"] == "error" and fragment in response.json()["error"]["message"]


async def test_messages_accepts_cache_control_thinking_and_unknown_fields():
    body = {
        **MESSAGES,
        "system": [
            {"type": "text", "text": "Sys A", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Sys B"},
        ],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "metadata": {"user_id": "u"},
        "context_management": {"edits": []},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}}]},
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "a"}],
            },
            {"role": "user", "content": "q2"},
        ],
    }
    engine = ScriptedEngine()
    async with client_for(engine) as client:
        response = await client.post(
            "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01", "anthropic-beta": "x"}
        )
    assert response.status_code == 200
    turn = engine.requests[0]
    assert turn.system == "Sys A\n\nSys B"
    assert [(m.role, m.text) for m in turn.messages] == [("user", "q"), ("assistant", "a"), ("user", "q2")]


async def test_count_tokens_is_an_honest_501():
    async with client_for(ScriptedEngine()) as client:
        response = await client.post("/v1/messages/count_tokens", json=MESSAGES)
    assert response.status_code == 501 and response.headers["x-should-retry"] == "false"
    assert response.json()["type"] == "error" and "no estimates" in response.json()["error"]["message"]


async def test_keys_work_as_x_api_key_or_bearer_and_failures_are_anthropic_shaped():
    settings = Settings(_env_file=None, bridge_api_key="k1")
    engine = ScriptedEngine(settings=settings)
    async with client_for(engine) as client:
        missing = await client.post("/v1/messages", json=MESSAGES)
        by_header = await client.post("/v1/messages", json=MESSAGES, headers={"x-api-key": "k1"})
        by_bearer = await client.post("/v1/messages", json=MESSAGES, headers={"authorization": "Bearer k1"})
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    assert by_header.status_code == by_bearer.status_code == 200
