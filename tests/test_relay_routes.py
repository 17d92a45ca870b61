"""The one streaming relay, through every API's routes (scripted engine over ASGI): a failure
after the first byte is the API's in-band error followed by its terminator; a turn that ends
without its TurnDone is an error too, never a quiet success."""

from __future__ import annotations

import json

import pytest
from scripted_engine import ScriptedEngine, client_for, text_turn

from claude_cli_bridge.core.turn import TextDelta, TurnDone, Usage
from claude_cli_bridge.errors import CliCrashed, InvalidRequest, PoolBusy, UpstreamError

pytestmark = pytest.mark.routes

FAILURES = {
    "bridge error": [TextDelta("partial"), UpstreamError("Upstream overloaded: busy", status=503, retry=True)],
    "unexpected exception": [TextDelta("partial"), RuntimeError("boom")],
    "no TurnDone": [TextDelta("partial")],
}

CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}


def sse_data(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize("failure", FAILURES)
async def test_openai_stream_ends_with_an_error_frame_then_done(failure):
    engine = ScriptedEngine(script=lambda request: FAILURES[failure])
    async with client_for(engine) as client:
        response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status_code == 200
    frames = sse_data(response.text)
    assert frames[-1] == "[DONE]"
    error = json.loads(frames[-2])["error"]
    assert error["message"] and "boom" not in error["message"]  # no internals
    chunks = [json.loads(frame) for frame in frames[:-2]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "partial"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)  # never looks finished
    assert engine.closed_turns == 1


@pytest.mark.parametrize("failure", FAILURES)
async def test_ollama_stream_ends_with_an_error_line(failure):
    engine = ScriptedEngine(script=lambda request: FAILURES[failure])
    async with client_for(engine) as client:
        response = await client.post("/api/chat", json=CHAT)
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert all(line for line in response.text.splitlines())  # no blank lines
    assert "error" in lines[-1] and not any(line.get("done") for line in lines)
    assert engine.closed_turns == 1


@pytest.mark.parametrize("failure", FAILURES)
async def test_non_streaming_failures_are_statuses_not_answers(failure):
    engine = ScriptedEngine(script=lambda request: FAILURES[failure])
    async with client_for(engine) as client:
        openai = await client.post("/v1/chat/completions", json=CHAT)
        ollama = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert openai.status_code >= 500 and "error" in openai.json()
    assert ollama.status_code >= 500 and isinstance(ollama.json()["error"], str)


@pytest.mark.parametrize(
    "error, openai_status, ollama_status",
    [
        (InvalidRequest("bad"), 400, 400),
        (PoolBusy("busy", retry_after=2), 503, 503),
        (UpstreamError("Upstream overloaded", status=503, retry=True, retry_after=10), 503, 503),
        (CliCrashed("gone"), 502, 502),
    ],
)
async def test_errors_before_the_first_byte_are_http_statuses(error, openai_status, ollama_status):
    engine = ScriptedEngine(script=lambda request: [error])
    async with client_for(engine) as client:
        for stream in (False, True):
            openai = await client.post("/v1/chat/completions", json={**CHAT, "stream": stream})
            assert openai.status_code == openai_status
            assert openai.json()["error"]["message"] == error.message
            ollama = await client.post("/api/chat", json={**CHAT, "stream": stream})
            assert ollama.status_code == ollama_status and ollama.json() == {"error": error.message}
        assert (openai.headers.get("x-should-retry") == "false") == (not error.retry)


async def test_a_complete_stream_has_finish_reason_usage_and_done():
    engine = ScriptedEngine(script=lambda request: text_turn("a", "b", usage=Usage(7, 2)))
    async with client_for(engine) as client:
        body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        frames = sse_data((await client.post("/v1/chat/completions", json=body)).text)
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["prompt_tokens"] == 7 and chunks[-1]["choices"] == []


async def test_ollama_final_frame_has_integer_durations():
    engine = ScriptedEngine(script=lambda request: [TextDelta("x"), TurnDone("end_turn", Usage(3, 1))])
    async with client_for(engine) as client:
        lines = [json.loads(line) for line in (await client.post("/api/chat", json=CHAT)).text.splitlines()]
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    for key in (
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ):
        assert isinstance(final[key], int)
