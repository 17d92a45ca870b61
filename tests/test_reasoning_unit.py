"""Pure pieces of reasoning, documents, legacy functions, tool choice and model aliases,
table-style; and the route tier (scripted engine over ASGI) for what they change on the wire."""

from __future__ import annotations

import base64
import json

import pytest
from scripted_engine import ScriptedEngine, client_for, text_turn

from claude_cli_bridge.api.ollama import translate as ollama
from claude_cli_bridge.api.ollama.protocol import ChatRequest
from claude_cli_bridge.api.openai import translate
from claude_cli_bridge.api.openai.protocol import ChatCompletionRequest
from claude_cli_bridge.cli.client_tools import upstream_tool_choice
from claude_cli_bridge.cli.launch import LaunchFiles, build_argv
from claude_cli_bridge.cli.profile import Profile
from claude_cli_bridge.cli.wire import TurnParser
from claude_cli_bridge.core import reasoning
from claude_cli_bridge.core.documents import document_from_file_data, pdf_from_base64
from claude_cli_bridge.core.messages import DocumentBlock, TextBlock, ToolResultBlock, ToolUseBlock
from claude_cli_bridge.core.models import resolve_model
from claude_cli_bridge.core.turn import TextDelta, ThinkingDelta, ToolCall, ToolSpec, TurnDone, TurnRequest, Usage
from claude_cli_bridge.embeddings.token_ids import decode, encoding_for, load_cl100k
from claude_cli_bridge.errors import InvalidRequest, ModelNotFound, RequestTooLarge, UpstreamError
from claude_cli_bridge.settings import Settings, parse_model_aliases

PDF = b"%PDF-1.7\n%%EOF\n"
PDF_B64 = base64.b64encode(PDF).decode()
DONE = TurnDone("end_turn", Usage(5, 3), "m")


def chat(**body):
    return translate.from_chat_request(ChatCompletionRequest.model_validate(body), max_image_bytes=1 << 20)


# -- reasoning -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        (None, reasoning.Reasoning()),
        ("none", reasoning.Reasoning(thinking=False)),
        ("minimal", reasoning.Reasoning(effort="low", show=True)),
        ("low", reasoning.Reasoning(effort="low", show=True)),
        ("medium", reasoning.Reasoning(effort="medium", show=True)),
        ("high", reasoning.Reasoning(effort="high", show=True)),
        ("xhigh", reasoning.Reasoning(effort="xhigh", show=True)),
        ("HIGH", reasoning.Reasoning(effort="high", show=True)),
    ],
)
def test_openai_reasoning_effort_maps_to_the_clis_effort(value, expected):
    assert reasoning.from_openai(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, reasoning.Reasoning()),
        (True, reasoning.Reasoning(show=True)),
        (False, reasoning.Reasoning(thinking=False)),
        ("low", reasoning.Reasoning(effort="low", show=True)),
        ("high", reasoning.Reasoning(effort="high", show=True)),
        ("max", reasoning.Reasoning(effort="max", show=True)),
    ],
)
def test_ollama_think_maps_to_effort_and_showing(value, expected):
    assert reasoning.from_ollama(value) == expected


@pytest.mark.parametrize("value", ["extreme", 3, {"effort": "high"}])
def test_unknown_reasoning_values_are_400s(value):
    with pytest.raises(InvalidRequest, match="reasoning_effort"):
        reasoning.from_openai(value)
    with pytest.raises(InvalidRequest, match="think"):
        reasoning.from_ollama(value)


def test_default_effort_setting_is_checked():
    assert Settings(_env_file=None, default_effort="High").default_effort == "high"
    with pytest.raises(ValueError, match="DEFAULT_EFFORT"):
        Settings(_env_file=None, default_effort="turbo")


def test_profile_effort_thinking_and_tool_choice_reach_argv_and_env():
    profile = Profile(model="sonnet", effort="high", thinking_off=True, tool_choice_json='{"type":"any"}')
    argv = build_argv("claude", profile, LaunchFiles())
    assert argv[argv.index("--effort") + 1] == "high"
    env = profile.env({"PATH": "/bin"}, 1)
    assert env["CLAUDE_CODE_DISABLE_THINKING"] == "1"
    assert json.loads(env["CLAUDE_CODE_EXTRA_BODY"]) == {"tool_choice": {"type": "any"}}
    plain = Profile(model="sonnet")
    assert "--effort" not in build_argv("claude", plain, LaunchFiles())
    assert "CLAUDE_CODE_DISABLE_THINKING" not in plain.env({}, 1) and "CLAUDE_CODE_EXTRA_BODY" not in plain.env({}, 1)


# -- thinking from the CLI -----------------------------------------------------------------------
def test_thinking_deltas_become_thinking_events_and_the_signature_stays_inside():
    parser = TurnParser()
    lines = [
        {"type": "stream_event", "event": {"type": "message_start", "message": {"id": "m1", "usage": {}}}},
        {"type": "stream_event", "event": {"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "Hm"}}},
        {"type": "stream_event", "event": {"type": "content_block_delta", "delta": {"type": "signature_delta", "signature": "s"}}},
        {"type": "assistant", "message": {"id": "m1", "content": [{"type": "thinking", "thinking": "Hm", "signature": "s"}]}},
        {"type": "stream_event", "event": {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}}},
    ]  # fmt: skip
    events = [event for line in lines for event in parser.feed(line)]
    assert events == [ThinkingDelta("Hm"), TextDelta("Hi")]


def test_a_non_streamed_message_yields_its_thinking_then_its_text():
    parser = TurnParser()
    message = {
        "id": "m9",
        "content": [{"type": "thinking", "thinking": "T", "signature": "s"}, {"type": "text", "text": "A"}],
    }
    assert parser.feed({"type": "assistant", "message": message}) == [ThinkingDelta("T"), TextDelta("A")]


def test_openai_chunks_carry_thinking_as_reasoning_content_before_content():
    writer = translate.ChunkWriter(model="sonnet")
    frames = writer.on_event(ThinkingDelta("T1")) + writer.on_event(TextDelta("A")) + writer.on_event(DONE)
    deltas = [frame["choices"][0]["delta"] for frame in frames if isinstance(frame, dict)]
    assert deltas[1] == {"reasoning_content": "T1"} and deltas[2] == {"content": "A"}
    assert all("T1" not in (delta.get("content") or "") for delta in deltas)
    whole = translate.to_completion("A", [], DONE, model="m", completion_id="c", created=0, reasoning="T1")
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": "A", "reasoning_content": "T1"}


@pytest.mark.parametrize("think, shown", [(True, "T"), (False, None)])
def test_ollama_frames_carry_thinking_only_when_think_was_set(think, shown):
    writer = ollama.FrameWriter(model="sonnet", think=think)
    frames = writer.on_event(ThinkingDelta("T"), 1) + writer.on_event(TextDelta("A"), 2)
    assert [frame["message"].get("thinking") for frame in frames] == ([shown, None] if think else [None])
    whole = ollama.FrameWriter(model="sonnet", think=think).whole([ThinkingDelta("T"), TextDelta("A"), DONE], 5)
    assert whole["message"].get("thinking") == shown and whole["message"]["content"] == "A"
    generate = ollama.FrameWriter(model="sonnet", kind="generate", think=think)
    assert generate.whole([ThinkingDelta("T"), TextDelta("A"), DONE], 5).get("thinking") == shown


def test_ollama_chat_request_carries_the_think_level():
    turn = ollama.from_chat_request(
        ChatRequest.model_validate(
            {"model": "sonnet", "messages": [{"role": "user", "content": "x"}], "think": "high"}
        ),
        max_image_bytes=1 << 20,
    )
    assert turn is not None and (turn.effort, turn.thinking) == ("high", None)


# -- documents -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "file_data, filename, expected",
    [
        (f"data:application/pdf;base64,{PDF_B64}", "a.pdf", DocumentBlock("application/pdf", PDF_B64, "a.pdf")),
        (PDF_B64, None, DocumentBlock("application/pdf", PDF_B64)),  # bare base64, sniffed
        (f"data:application/octet-stream;base64,{PDF_B64}", "x", DocumentBlock("application/pdf", PDF_B64, "x")),
        ("data:text/plain;base64," + base64.b64encode(b"hi\n").decode(), "n.txt", DocumentBlock("text/plain", "hi\n", "n.txt")),
        ("data:application/octet-stream;base64," + base64.b64encode(b"a,b").decode(), "t.csv", DocumentBlock("text/plain", "a,b", "t.csv")),
    ],
)  # fmt: skip
def test_file_data_becomes_a_document(file_data, filename, expected):
    assert document_from_file_data(file_data, filename, 1 << 20, "m") == expected


@pytest.mark.parametrize(
    "file_data, filename, error, message",
    [
        ("data:application/pdf;base64,%%%", None, InvalidRequest, "not valid base64"),
        ("data:text/plain;base64," + base64.b64encode(b"\xff\xfe").decode(), "a.txt", InvalidRequest, "not UTF-8"),
        ("data:image/png;base64," + base64.b64encode(b"\x89PNG").decode(), "a.png", InvalidRequest, "unsupported file"),
        ("data:text/plain;base64,", "a.txt", InvalidRequest, "empty"),
        ("data:application/pdf;base64," + base64.b64encode(b"%PDF-" + b"x" * 100).decode(), None, RequestTooLarge, "limit"),
    ],
)  # fmt: skip
def test_bad_files_are_4xx_naming_the_part(file_data, filename, error, message):
    with pytest.raises(error, match=message) as caught:
        document_from_file_data(file_data, filename, 64, "messages[0].content[1]")
    assert caught.value.param == "messages[0].content[1]"


def test_a_document_block_renders_as_anthropics_document():
    assert DocumentBlock("application/pdf", "QQ==", "a.pdf").to_anthropic() == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "QQ=="},
        "title": "a.pdf",
    }
    assert DocumentBlock("text/plain", "hi").to_anthropic()["source"] == {
        "type": "text",
        "media_type": "text/plain",
        "data": "hi",
    }


def test_openai_file_parts_only_in_user_messages():
    part = {"type": "file", "file": {"file_data": PDF_B64}}
    turn = chat(messages=[{"role": "user", "content": [part, {"type": "text", "text": "sum"}]}])
    assert turn.messages[0].content == (DocumentBlock("application/pdf", PDF_B64), TextBlock("sum"))
    with pytest.raises(InvalidRequest, match="user messages only"):
        chat(
            messages=[
                {"role": "user", "content": "q"},
                {"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t", "content": [part]},
            ],
            tools=[{"type": "function", "function": {"name": "f"}}],
        )


def test_only_a_pdf_among_ollama_images_is_a_document():
    assert pdf_from_base64(PDF_B64, 1 << 20, "i") == DocumentBlock("application/pdf", PDF_B64)
    assert pdf_from_base64(base64.b64encode(b"\x89PNG\r\n").decode(), 1 << 20, "i") is None


# -- legacy functions and tool choice ------------------------------------------------------------
FN = {"name": "get_weather", "parameters": {"type": "object"}}


def test_functions_are_tools_and_one_call_at_most():
    turn = chat(messages=[{"role": "user", "content": "w?"}], functions=[FN])
    assert turn.tools == (ToolSpec("get_weather", "", {"type": "object"}),)
    assert (turn.tool_choice, turn.parallel_tool_calls) == ("auto", False)


def test_a_function_call_history_pairs_results_by_name():
    turn = chat(
        messages=[
            {"role": "user", "content": "w?"},
            {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": '{"c":1}'}},
            {"role": "function", "name": "get_weather", "content": "sunny"},
        ],
        functions=[FN],
    )
    assert turn.messages[1].content == (ToolUseBlock("call_1_0", "get_weather", '{"c":1}'),)
    assert turn.messages[2].content == (ToolResultBlock("call_1_0", (TextBlock("sunny"),)),)
    with pytest.raises(InvalidRequest, match="function_call of an earlier"):
        chat(messages=[{"role": "user", "content": "w?"}, {"role": "function", "name": "x", "content": "1"}])


@pytest.mark.parametrize(
    "body, expected",
    [
        ({}, ("auto", None)),
        ({"tool_choice": "none"}, ("none", None)),
        ({"tool_choice": "required"}, ("required", None)),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, ("required", "f")),
        ({"function_call": {"name": "f"}}, ("required", "f")),
        ({"function_call": "none"}, ("none", None)),
    ],
)
def test_tool_choice_forms(body, expected):
    request = ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "x"}], **body})
    assert translate.tool_choice_of(request) == expected


def test_legacy_answers_use_function_call():
    call = ToolCall("toolu_1", "get_weather", {"c": 1})
    done = TurnDone("tool_use", Usage(1, 1))
    whole = translate.to_completion("", [call], done, model="m", completion_id="c", created=0, legacy=True)
    choice = whole["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["function_call"] == {"name": "get_weather", "arguments": '{"c": 1}'}
    assert "tool_calls" not in choice["message"]
    with pytest.raises(UpstreamError, match="2 function calls"):
        translate.to_completion("", [call, call], done, model="m", completion_id="c", created=0, legacy=True)
    writer = translate.ChunkWriter(model="m", legacy=True)
    frames = writer.on_event(call) + writer.on_event(done)
    deltas = [frame["choices"][0]["delta"] for frame in frames if isinstance(frame, dict)]
    assert deltas[1] == {"function_call": {"name": "get_weather", "arguments": ""}}
    assert deltas[2] == {"function_call": {"arguments": '{"c": 1}'}}
    assert frames[-1]["choices"][0]["finish_reason"] == "function_call"


@pytest.mark.parametrize(
    "choice, forced, parallel, expected",
    [
        ("auto", None, True, None),
        ("none", None, False, None),
        ("auto", None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", None, True, {"type": "any"}),
        ("required", "f", True, {"type": "tool", "name": "mcp__client__f"}),
        ("required", "f", False, {"type": "tool", "name": "mcp__client__f", "disable_parallel_tool_use": True}),
    ],
)
def test_upstream_tool_choice(choice, forced, parallel, expected):
    request = TurnRequest(
        model="s",
        messages=[],
        tools=(ToolSpec("f", "", {"type": "object"}),),
        tool_choice=choice,
        forced_tool=forced,
        parallel_tool_calls=parallel,
    )
    assert upstream_tool_choice(request, {"f": "mcp__client__f"}) == expected


# -- models and token ids ------------------------------------------------------------------------
def test_model_aliases_resolve_and_other_names_stay_404():
    aliases = parse_model_aliases(" gpt-4o = sonnet, GPT-4o-mini=haiku ,")
    assert aliases == {"gpt-4o": "sonnet", "gpt-4o-mini": "haiku"}
    assert resolve_model("gpt-4o-mini", "sonnet", {}, aliases) == "haiku"
    assert resolve_model("gpt-4o:latest", "sonnet", {}, aliases) == "sonnet"
    with pytest.raises(ModelNotFound):
        resolve_model("gpt-4-turbo", "sonnet", {}, aliases)
    with pytest.raises(ValueError, match="name=model"):
        parse_model_aliases("gpt-4o")


@pytest.mark.parametrize(
    "model, encoding",
    [
        ("text-embedding-ada-002", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-3-large:latest", "cl100k_base"),
        ("openai/text-embedding-3-small", "cl100k_base"),
        ("all-minilm", None),
        ("sentence-transformers/all-MiniLM-L6-v2", None),
        (None, None),
    ],
)
def test_which_tokenizer_a_model_name_implies(model, encoding):
    assert encoding_for(model) == encoding


def test_cl100k_decodes_offline_and_refuses_unknown_ids():
    encoding = load_cl100k()
    assert decode(encoding, [[15339, 1917], encoding.encode("naïve café")]) == ["hello world", "naïve café"]
    with pytest.raises(InvalidRequest, match="100256"):
        decode(encoding, [[1], [100256]])


# -- routes --------------------------------------------------------------------------------------
TITLE = '### Task:\nGenerate a title.\nJSON format: { "title": "x" }\n<chat_history>\nUSER: hi\n</chat_history>'


async def test_openai_title_task_goes_to_the_task_model_without_a_conversation():
    engine = ScriptedEngine()
    async with client_for(engine) as client:
        body = {"model": "sonnet", "messages": [{"role": "user", "content": TITLE}], "id": "conv-1"}
        assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        await client.post("/v1/chat/completions", json={**body, "stream": True})
    assert (engine.requests[0].model, engine.requests[0].conversation_key) == ("haiku", None)
    assert engine.requests[1].model == "sonnet"


async def test_openai_stream_puts_reasoning_content_before_content():
    engine = ScriptedEngine(script=lambda request: [ThinkingDelta("T"), *text_turn("A")])
    async with client_for(engine) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={
                "model": "sonnet",
                "messages": [{"role": "user", "content": "x"}],
                "stream": True,
                "reasoning_effort": "high",
            },
        )
    frames = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    deltas = [frame["choices"][0]["delta"] for frame in frames]
    assert [d for d in deltas if d.get("reasoning_content")] == [{"reasoning_content": "T"}]
    assert "".join(d.get("content") or "" for d in deltas) == "A"
    assert engine.requests[0].effort == "high"


async def test_retrieving_listed_models_and_aliases():
    settings = Settings(_env_file=None, model_aliases="gpt-4o=sonnet")
    engine = ScriptedEngine(settings=settings)
    async with client_for(engine) as client:
        listed = [entry["id"] for entry in (await client.get("/v1/models")).json()["data"]]
        assert "gpt-4o" in listed
        for model_id in listed:
            response = await client.get(f"/v1/models/{model_id}")
            assert response.status_code == 200 and response.json()["id"] == model_id
        assert (await client.get("/v1/models/gpt-4-turbo")).status_code == 404
        assert (await client.get("/v1/models/claude-3-5-sonnet-20241022")).status_code == 200


async def test_ollama_tags_list_the_aliases():
    engine = ScriptedEngine(settings=Settings(_env_file=None, model_aliases="gpt-4o=sonnet"))
    async with client_for(engine) as client:
        names = [entry["name"] for entry in (await client.get("/api/tags")).json()["models"]]
        assert "gpt-4o:latest" in names
        response = await client.post("/api/chat", json={"model": "gpt-4o:latest", "messages": [], "stream": False})
        assert response.status_code == 200


# -- signed thinking before tool calls -----------------------------------------------------------
def test_thinking_memory_puts_signed_thinking_back_before_the_calls():
    from claude_cli_bridge.core.messages import Message, ThinkingBlock
    from claude_cli_bridge.engine.thinking import ThinkingMemory

    memory = ThinkingMemory(limit=2)
    signed = ThinkingBlock("plan", "sig", model="claude-sonnet-5-5")
    memory.remember(Message("assistant", (signed, ToolUseBlock("toolu_1", "f", '{"a":1}'))))
    memory.remember(Message("assistant", (TextBlock("no calls, nothing kept"),)))
    by_id = Message("assistant", (ToolUseBlock("toolu_1", "f", '{"a":1}'),))
    by_call = Message("assistant", (ToolUseBlock("call_1_0", "f", '{"a":1}'),))  # ids dropped
    other = Message("assistant", (ToolUseBlock("toolu_2", "g", "{}"),))
    restored = memory.restore([by_id, by_call, other])
    assert [m.content[0] for m in restored[:2]] == [signed, signed]
    assert restored[2] == other
    assert by_id.match_key() == restored[0].match_key(), "thinking never changes what a turn is"
    memory.remember(Message("assistant", (signed, ToolUseBlock("toolu_3", "h", "{}"))))
    assert len(memory) == 2  # bounded


def test_a_transcript_names_the_model_that_signed_the_thinking(tmp_path):
    from claude_cli_bridge.cli.wire import write_transcript
    from claude_cli_bridge.core.messages import Message, ThinkingBlock

    messages = [
        Message("user", (TextBlock("q"),)),
        Message("assistant", (ThinkingBlock("plan", "sig", model="claude-sonnet-5-5"), TextBlock("a"))),
    ]
    write_transcript(messages, tmp_path / "t.jsonl")
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert records[1]["message"]["model"] == "claude-sonnet-5-5"
    assert records[1]["message"]["content"][0] == {"type": "thinking", "thinking": "plan", "signature": "sig"}
    assert "model" not in records[0]["message"]
