"""The Responses, Anthropic Messages and legacy Completions routes over ASGI with a scripted
engine: shapes, statuses, the stored-response lifecycle, and each stream writer's error paths
(a failure after the first byte is that API's in-band error; a turn without TurnDone too)."""

from __future__ import annotations

import json

import pytest
from scripted_engine import ScriptedEngine, client_for, text_turn

from claude_cli_bridge.core.messages import ToolResultBlock, ToolUseBlock
from claude_cli_bridge.core.turn import TextDelta, ToolCall, TurnDone, Usage
from claude_cli_bridge.errors import CliCrashed, InvalidRequest, PoolBusy, UpstreamError
from claude_cli_bridge.settings import Settings

FAILURES = {
    "bridge error": [TextDelta("partial"), UpstreamError("Upstream overloaded: busy", status=503, retry=True)],
    "unexpected exception": [TextDelta("partial"), RuntimeError("boom")],
    "no TurnDone": [TextDelta("partial")],
}
RESPONSES = {"model": "sonnet", "input": "hi"}
MESSAGES = {"model": "sonnet", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
COMPLETIONS = {"model": "sonnet", "prompt": "hi"}


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


# -- Responses -------------------------------------------------------------------------------
async def test_responses_non_streaming_object_has_output_items_and_usage():
    def script(request):
        return [
            TextDelta("Let me look."),
            ToolCall("toolu_1", "lookup", {"q": "x"}),
            TurnDone("tool_use", Usage(10, 4, cache_read_input_tokens=6, cache_creation_input_tokens=2)),
        ]

    engine = ScriptedEngine(script=script)
    body = {**RESPONSES, "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]}
    async with client_for(engine) as client:
        response = (await client.post("/v1/responses", json=body)).json()
    assert response["object"] == "response" and response["status"] == "completed"
    message, call = response["output"]
    assert message["type"] == "message" and message["content"][0]["text"] == "Let me look."
    assert call == {
        "type": "function_call",
        "id": call["id"],
        "call_id": "toolu_1",
        "name": "lookup",
        "arguments": '{"q": "x"}',
        "status": "completed",
    }
    assert response["usage"] == {
        "input_tokens": 18,
        "input_tokens_details": {"cached_tokens": 6, "cache_write_tokens": 2},
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 22,
    }


async def test_responses_stream_has_typed_events_with_increasing_sequence_numbers():
    engine = ScriptedEngine(script=lambda request: text_turn("Hel", "lo"))
    async with client_for(engine) as client:
        events = sse_events((await client.post("/v1/responses", json={**RESPONSES, "stream": True})).text)
    names = [name for name, _ in events]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    datas = [json.loads(data) for _, data in events]
    assert [d["sequence_number"] for d in datas] == list(range(len(datas)))
    assert all(d["type"] == name for name, d in zip(names, datas, strict=True))
    assert datas[-1]["response"]["output"][0]["content"][0]["text"] == "Hello"


async def test_responses_max_tokens_gives_an_incomplete_response():
    engine = ScriptedEngine(script=lambda request: text_turn("cut", stop="max_tokens"))
    async with client_for(engine) as client:
        response = (await client.post("/v1/responses", json={**RESPONSES, "max_output_tokens": 5})).json()
        events = sse_events((await client.post("/v1/responses", json={**RESPONSES, "stream": True})).text)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete" and response["output"][0]["content"][0]["text"] == "cut"
    assert engine.requests[0].max_tokens == 5
    assert events[-1][0] == "response.incomplete"


@pytest.mark.parametrize("failure", FAILURES)
async def test_responses_stream_failure_is_response_failed_then_error(failure):
    engine = ScriptedEngine(script=lambda request: FAILURES[failure])
    async with client_for(engine) as client:
        response = await client.post("/v1/responses", json={**RESPONSES, "stream": True})
    assert response.status_code == 200
    events = sse_events(response.text)
    (failed_name, failed), (error_name, error) = events[-2], events[-1]
    assert (failed_name, error_name) == ("response.failed", "error")
    failed, error = json.loads(failed), json.loads(error)
    assert failed["response"]["status"] == "failed" and failed["response"]["error"]["message"]
    assert failed["response"]["output"][0]["content"][0]["text"] == "partial"
    assert error["message"] and "boom" not in error["message"]
    assert not any(name == "response.completed" for name, _ in events)
    assert engine.closed_turns == 1


async def test_previous_response_id_continues_the_stored_conversation():
    engine = ScriptedEngine(script=lambda request: text_turn(f"answer {len(engine.requests)}"))
    async with client_for(engine) as client:
        first = (await client.post("/v1/responses", json={**RESPONSES, "instructions": "Be brief."})).json()
        second = (
            await client.post(
                "/v1/responses", json={"model": "sonnet", "input": "more", "previous_response_id": first["id"]}
            )
        ).json()
        fetched = (await client.get(f"/v1/responses/{second['id']}")).json()
    turn = engine.requests[1]
    assert [(m.role, m.text) for m in turn.messages] == [("user", "hi"), ("assistant", "answer 1"), ("user", "more")]
    assert turn.system is None  # instructions are not carried over, as OpenAI documents
    assert second["previous_response_id"] == first["id"]
    assert fetched == second


async def test_previous_response_id_with_function_call_output_sends_a_tool_result():
    def script(request):
        if len(engine.requests) == 1:
            return [ToolCall("toolu_9", "lookup", {"q": 1}), TurnDone("tool_use", Usage(1, 1))]
        return text_turn("done")

    engine = ScriptedEngine(script=script)
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    async with client_for(engine) as client:
        first = (await client.post("/v1/responses", json={**RESPONSES, "tools": tools})).json()
        follow = {
            "model": "sonnet",
            "previous_response_id": first["id"],
            "tools": tools,
            "input": [{"type": "function_call_output", "call_id": "toolu_9", "output": "42"}],
        }
        assert (await client.post("/v1/responses", json=follow)).status_code == 200
    messages = engine.requests[1].messages
    assert isinstance(messages[1].content[0], ToolUseBlock) and messages[1].content[0].id == "toolu_9"
    result = messages[2].content[0]
    assert isinstance(result, ToolResultBlock) and result.tool_use_id == "toolu_9" and result.content[0].text == "42"


async def test_store_false_keeps_nothing_and_unknown_ids_are_404_in_openai_shape():
    engine = ScriptedEngine()
    async with client_for(engine) as client:
        unstored = (await client.post("/v1/responses", json={**RESPONSES, "store": False})).json()
        missing = await client.post("/v1/responses", json={**RESPONSES, "previous_response_id": unstored["id"]})
        get = await client.get(f"/v1/responses/{unstored['id']}")
        stored = (await client.post("/v1/responses", json=RESPONSES)).json()
        deleted = await client.delete(f"/v1/responses/{stored['id']}")
        again = await client.delete(f"/v1/responses/{stored['id']}")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "previous_response_id"
    assert get.status_code == 404 and get.json()["error"]["type"] == "invalid_request_error"
    assert deleted.json() == {"id": stored["id"], "object": "response.deleted", "deleted": True}
    assert again.status_code == 404
    assert len(engine.requests) == 2


async def test_store_is_bounded():
    settings = Settings(_env_file=None, responses_store_max=2)
    engine = ScriptedEngine(settings=settings)
    async with client_for(engine) as client:
        ids = [(await client.post("/v1/responses", json=RESPONSES)).json()["id"] for _ in range(3)]
        statuses = [(await client.get(f"/v1/responses/{i}")).status_code for i in ids]
    assert statuses == [404, 200, 200]


async def test_hosted_tools_are_left_out_but_forcing_one_is_a_400():
    engine = ScriptedEngine()
    tools = [{"type": "web_search"}, {"type": "function", "name": "f", "parameters": {"type": "object"}}]
    async with client_for(engine) as client:
        ok = await client.post("/v1/responses", json={**RESPONSES, "tools": tools})
        forced = await client.post(
            "/v1/responses", json={**RESPONSES, "tools": tools, "tool_choice": {"type": "web_search"}}
        )
    assert ok.status_code == 200
    assert [tool.name for tool in engine.requests[0].tools] == ["f"]
    assert forced.status_code == 400 and "web_search" in forced.json()["error"]["message"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"model": "sonnet"}, "input"),
        ({**RESPONSES, "input": [{"type": "computer_call"}]}, "computer_call"),
        (
            {**RESPONSES, "input": [{"role": "user", "content": [{"type": "input_file", "file_data": "x"}]}]},
            "not valid base64",
        ),
        (
            {**RESPONSES, "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]},
            "no file store",
        ),
        ({**RESPONSES, "input": [{"role": "assistant", "content": "only me"}]}, "must end with a user"),
        ({**RESPONSES, "background": True}, "background"),
        ({**RESPONSES, "model": "gpt-4o"}, "gpt-4o"),
        ({**RESPONSES, "tools": [{"type": "custom", "name": "apply_patch"}]}, "custom"),
        ({**RESPONSES, "text": {"format": {"type": "json_schema", "name": "x"}}}, "schema"),
    ],
)
async def test_responses_bad_bodies_get_4xx_in_openai_shape(body, fragment):
    async with client_for(ScriptedEngine()) as client:
        response = await client.post("/v1/responses", json=body)
    assert 400 <= response.status_code < 500
    assert fragment in response.json()["error"]["message"]


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
