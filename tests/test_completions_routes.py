"""The legacy Completions routes over ASGI with a scripted engine: the object and its stream,
fill in the middle, a failure after the first byte, bad bodies."""

from __future__ import annotations

import json

import pytest
from scripted_engine import FAILURES, ScriptedEngine, client_for, sse_events, text_turn

from claude_cli_bridge.core.turn import Usage

pytestmark = pytest.mark.routes

COMPLETIONS = {"model": "sonnet", "prompt": "hi"}


# -- legacy Completions ------------------------------------------------------------------------
async def test_completions_object_and_stream():
    engine = ScriptedEngine(script=lambda request: text_turn("4", usage=Usage(6, 1)))
    async with client_for(engine) as client:
        whole = (await client.post("/v1/completions", json=COMPLETIONS)).json()
        body = {**COMPLETIONS, "stream": True, "stream_options": {"include_usage": True}}
        frames = [data for _, data in sse_events((await client.post("/v1/completions", json=body)).text)]
    assert whole["object"] == "text_completion"
    assert whole["choices"] == [{"text": "4", "index": 0, "logprobs": None, "finish_reason": "stop"}]
    assert whole["usage"] == {"prompt_tokens": 6, "completion_tokens": 1, "total_tokens": 7}
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    assert chunks[0]["choices"][0]["text"] == "4" and chunks[1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[2]["choices"] == [] and chunks[2]["usage"]["total_tokens"] == 7


async def test_completions_suffix_is_fill_in_the_middle():
    engine = ScriptedEngine()
    async with client_for(engine) as client:
        await client.post("/v1/completions", json={**COMPLETIONS, "prompt": ["def f():"], "suffix": "  return x"})
    turn = engine.requests[0]
    assert turn.messages[0].text == "<prefix>def f():</prefix><suffix>  return x</suffix>"
    assert "Fill in the middle" in (turn.system or "")


@pytest.mark.parametrize("failure", FAILURES)
async def test_completions_stream_failure_is_an_error_frame_then_done(failure):
    engine = ScriptedEngine(script=lambda request: FAILURES[failure])
    async with client_for(engine) as client:
        frames = [
            data
            for _, data in sse_events((await client.post("/v1/completions", json={**COMPLETIONS, "stream": True})).text)
        ]
    assert frames[-1] == "[DONE]" and "error" in json.loads(frames[-2])


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({**COMPLETIONS, "prompt": ["a", "b"]}, "2 prompts"),
        ({**COMPLETIONS, "prompt": [1, 2, 3]}, "token-id"),
        ({**COMPLETIONS, "echo": True}, "echo"),
        ({**COMPLETIONS, "n": 2}, "n > 1"),
        ({**COMPLETIONS, "best_of": 3}, "best_of"),
        ({**COMPLETIONS, "logprobs": 2}, "logprobs"),
        ({"model": "sonnet"}, "prompt"),
    ],
)
async def test_completions_bad_bodies_get_400(body, fragment):
    async with client_for(ScriptedEngine()) as client:
        response = await client.post("/v1/completions", json=body)
    assert response.status_code == 400 and fragment in response.json()["error"]["message"]
