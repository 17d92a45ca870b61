"""The Responses routes over ASGI with a scripted engine: shapes, statuses, the stored-response
lifecycle, and the stream writer's error paths (a failure after the first byte is the API's
in-band error; a turn without TurnDone too). The Anthropic Messages and legacy Completions
routes are in test_anthropic_routes.py and test_completions_routes.py."""

from __future__ import annotations

import json

import pytest
from scripted_engine import FAILURES, ScriptedEngine, client_for, sse_events, text_turn

from claude_cli_bridge.core.messages import ToolResultBlock, ToolUseBlock
from claude_cli_bridge.core.turn import TextDelta, ToolCall, TurnDone, Usage
from claude_cli_bridge.settings import Settings

pytestmark = pytest.mark.routes

RESPONSES = {"model": "sonnet", "input": "hi"}


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
        (  # two bytes that are no PDF
            {
                **RESPONSES,
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_file", "file_data": "data:application/pdf;base64,AA=="}],
                    }
                ],
            },
            "unsupported file",
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
