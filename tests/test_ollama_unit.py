"""The Ollama translators, pure: requests to TurnRequests, events to frames, model bodies."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from ollama._types import ChatResponse, GenerateResponse, ListResponse, ProcessResponse, ShowResponse

from claude_cli_bridge.api.ollama import translate
from claude_cli_bridge.api.ollama.protocol import ChatRequest, GenerateRequest
from claude_cli_bridge.api.parts import MediaLimits
from claude_cli_bridge.core.fim import FILL_IN_THE_MIDDLE
from claude_cli_bridge.core.messages import ImageBlock, Message, TextBlock, ToolResultBlock, ToolUseBlock
from claude_cli_bridge.core.turn import TextDelta, ToolCall, TurnDone, Usage
from claude_cli_bridge.errors import BridgeError, InvalidRequest

pytestmark = pytest.mark.unit

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
MAX = 1024 * 1024


def chat(**body) -> ChatRequest:
    return ChatRequest.model_validate({"model": "sonnet", **body})


def turn_of(**body):
    return translate.from_chat_request(chat(**body), MediaLimits.of(MAX))


def user(text: str) -> dict:
    return {"role": "user", "content": text}


# -- chat requests ---------------------------------------------------------------------------
def test_system_messages_become_the_system_prompt_and_the_rest_alternates():
    turn = turn_of(
        messages=[
            {"role": "system", "content": "Be brief."},
            user("Hi"),
            {"role": "assistant", "content": "Hello"},
            {"role": "system", "content": "Use French."},
            user("Again"),
        ]
    )
    assert turn.system == "Be brief.\n\nUse French."
    assert [(m.role, m.text) for m in turn.messages] == [("user", "Hi"), ("assistant", "Hello"), ("user", "Again")]


@pytest.mark.parametrize(
    "options, max_tokens, stop",
    [
        ({"num_predict": 64, "stop": ["END", ""]}, 64, ("END",)),
        ({"num_predict": -1, "stop": "###"}, None, ("###",)),
        ({"num_predict": -2}, None, ()),
        ({"temperature": "hot", "num_ctx": 4096, "mirostat": 2}, None, ()),  # ignored, never a 400
        (None, None, ()),
    ],
)
def test_options_map_num_predict_and_stop_and_ignore_the_rest(options, max_tokens, stop):
    turn = turn_of(messages=[user("x")], options=options)
    assert (turn.max_tokens, turn.stop) == (max_tokens, stop)


PROPS = {"a": {"type": "string"}}


@pytest.mark.parametrize(
    "format_, schema",
    [
        (None, None),
        ("", None),
        ("json", {"type": "object"}),
        ({"type": "object", "properties": PROPS}, {"type": "object", "properties": PROPS}),
        ({"properties": PROPS}, {"type": "object", "properties": PROPS}),  # the root type is implied
    ],
)
def test_format_becomes_a_json_schema(format_, schema):
    assert turn_of(messages=[user("x")], format=format_).json_schema == schema


@pytest.mark.parametrize("format_", ["yaml", {"type": "array", "items": {"type": "string"}}, 3])
def test_unusable_formats_are_a_400(format_):
    with pytest.raises(InvalidRequest) as error:
        turn_of(messages=[user("x")], format=format_)
    assert error.value.param == "format"


def test_unknown_keys_and_keep_alive_are_accepted():
    turn = turn_of(messages=[user("x")], keep_alive="5m", think=True, session_id="abc", chat_id="x")
    assert turn.messages[-1].text == "x"


@pytest.mark.parametrize(
    "body, header, key",
    [
        ({"id": "conv-1", "user": "u"}, None, "conv-1"),
        ({"user": "u"}, None, None),  # `user` is a person, not a conversation
        ({"id": "conv-1"}, "hdr", "hdr"),
        ({}, None, None),
    ],
)
def test_conversation_key_from_header_id_or_user(body, header, key):
    turn = translate.from_chat_request(chat(messages=[user("x")], **body), MediaLimits.of(MAX), conversation_key=header)
    assert turn.conversation_key == key


def test_images_become_image_blocks_before_the_text():
    turn = turn_of(messages=[{"role": "user", "content": "What is this?", "images": [PNG]}])
    assert turn.messages[0].content == (ImageBlock("image/png", PNG), TextBlock("What is this?"))


@pytest.mark.parametrize(
    "images, error",
    [(["not base64!"], "not valid base64"), ([base64.b64encode(b"plain text").decode()], "unsupported")],
)
def test_bad_images_are_a_400_naming_the_message(images, error):
    with pytest.raises(InvalidRequest) as caught:
        turn_of(messages=[{"role": "user", "content": "x", "images": images}])
    assert error in caught.value.message and "messages[0].images[0]" in caught.value.message


def test_tool_calls_and_results_pair_by_id():
    turn = turn_of(
        messages=[
            user("Weather?"),
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "toolu_1", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "-3C"},
        ],
        tools=[{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    )
    assert turn.messages[1].content == (ToolUseBlock("toolu_1", "weather", '{"city":"Oslo"}'),)
    assert turn.messages[2].content == (ToolResultBlock("toolu_1", (TextBlock("-3C"),)),)
    assert [tool.name for tool in turn.tools] == ["weather"]


def test_tool_results_without_ids_pair_by_name_then_order():
    """ollama-python sends neither call ids nor tool_call_id: ids come from positions."""
    turn = turn_of(
        messages=[
            user("Two things"),
            {
                "role": "assistant",
                "tool_calls": [
                    {"function": {"name": "a", "arguments": {}}},
                    {"function": {"name": "b", "arguments": '{"x": 1}'}},
                ],
            },
            {"role": "tool", "tool_name": "b", "content": "B"},
            {"role": "tool", "content": "A"},
            user("thanks"),
        ]
    )
    assistant, results = turn.messages[1], turn.messages[2]
    assert [(b.id, b.name, b.input) for b in assistant.content] == [("call_1_0", "a", {}), ("call_1_1", "b", {"x": 1})]
    assert [(b.tool_use_id, b.content) for b in results.content[:2]] == [
        ("call_1_1", (TextBlock("B"),)),
        ("call_1_0", (TextBlock("A"),)),
    ]
    assert results.content[2] == TextBlock("thanks")


@pytest.mark.parametrize(
    "messages, fragment",
    [
        ([], None),  # a load request, not an error
        ([{"role": "tool", "content": "x"}], "must answer a tool call"),
        ([user("x"), {"role": "assistant", "content": "prefill"}], "must end with a user"),
        ([{"role": "robot", "content": "x"}], "unknown role"),
        ([{"role": "system", "content": "only a system prompt"}], "must end with a user"),
        ([{"role": "user", "content": [{"type": "image_url"}]}], "expected a string"),
        (
            [
                user("x"),
                {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]},
                user("y"),
            ],
            "is not valid JSON",
        ),
    ],
)
def test_malformed_conversations_are_a_400_that_names_the_problem(messages, fragment):
    if fragment is None:
        assert turn_of(messages=messages) is None
        return
    with pytest.raises(InvalidRequest) as error:
        turn_of(messages=messages)
    assert fragment in error.value.message


# -- generate requests -------------------------------------------------------------------------
def generate(**body):
    request = GenerateRequest.model_validate({"model": "sonnet", **body})
    return translate.from_generate_request(request, MediaLimits.of(MAX))


def test_generate_sends_the_prompt_with_system_images_and_format():
    turn = generate(prompt="Describe", system="Be terse", images=[PNG], format="json", options={"num_predict": 9})
    assert turn.messages == [Message("user", (ImageBlock("image/png", PNG), TextBlock("Describe")))]
    assert (turn.system, turn.json_schema, turn.max_tokens) == ("Be terse", {"type": "object"}, 9)


def test_generate_suffix_asks_for_the_middle():
    turn = generate(prompt="def add(a, b):\n", suffix="\n    return c\n", system="Python only")
    assert turn.messages[0].text == "<prefix>def add(a, b):\n</prefix><suffix>\n    return c\n</suffix>"
    assert turn.system.startswith("Python only\n\n") and FILL_IN_THE_MIDDLE in turn.system


def test_generate_raw_sends_the_prompt_verbatim():
    turn = generate(prompt="[INST] hi [/INST]", raw=True, suffix="ignored")
    assert turn.messages[0].text == "[INST] hi [/INST]" and turn.system is None


@pytest.mark.parametrize("extra", [{"system": "s"}, {"template": "t"}, {"context": [1, 2]}])
def test_generate_raw_refuses_system_template_and_context(extra):
    with pytest.raises(InvalidRequest, match="raw mode"):
        generate(prompt="x", raw=True, **extra)


@pytest.mark.parametrize("body", [{}, {"prompt": ""}, {"prompt": "", "system": "s"}])
def test_generate_empty_prompt_is_a_load_request(body):
    assert generate(**body) is None


# -- frames ----------------------------------------------------------------------------------
STATS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration")
DONE = TurnDone("end_turn", Usage(input_tokens=10, output_tokens=4, cache_read_input_tokens=5), "claude-sonnet-5-5")


def test_chat_stream_frames_validate_and_end_with_integer_durations():
    writer = translate.FrameWriter(model="sonnet:latest", kind="chat", started_ns=1_000)
    writer.mark_first(5_000)
    frames = writer.on_event(TextDelta("Hel"), 5_000) + writer.on_event(TextDelta("lo"), 7_000)
    frames += writer.on_event(DONE, 11_000)
    for frame in frames:
        assert {"model", "created_at", "message", "done"} <= frame.keys() and frame["message"]["role"] == "assistant"
        ChatResponse.model_validate(frame)
    assert [f["message"]["content"] for f in frames] == ["Hel", "lo", ""]
    final = frames[-1]
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["prompt_eval_count"] == 15 and final["eval_count"] == 4
    assert (final["total_duration"], final["load_duration"], final["prompt_eval_duration"], final["eval_duration"]) == (
        10_000,
        0,
        4_000,
        6_000,
    )
    assert all(type(final[key]) is int for key in STATS)
    assert not any(f["done"] for f in frames[:-1])


@pytest.mark.parametrize(
    "stop_reason, reason",
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("tool_use", "stop"), ("max_tokens", "length")],
)
def test_done_reasons(stop_reason, reason):
    writer = translate.FrameWriter(model="m", started_ns=0)
    assert writer.on_event(TurnDone(stop_reason, Usage()), 10)[-1]["done_reason"] == reason


def test_load_reported_by_the_engine_is_split_from_prompt_evaluation():
    writer = translate.FrameWriter(model="m", started_ns=0)
    writer.mark_first(100)
    final = writer.on_event(TurnDone("end_turn", Usage(), timings={"load_ns": 30}), 150)[-1]
    assert (final["load_duration"], final["prompt_eval_duration"], final["eval_duration"]) == (30, 70, 50)


def test_tool_calls_stream_as_objects_and_fold_into_the_whole_answer():
    call = ToolCall("toolu_9", "weather", {"city": "Oslo"})
    writer = translate.FrameWriter(model="m", started_ns=0)
    frame = writer.on_event(call, 5)[0]
    assert frame["message"]["tool_calls"] == [
        {"id": "toolu_9", "function": {"index": 0, "name": "weather", "arguments": {"city": "Oslo"}}}
    ]
    ChatResponse.model_validate(frame)
    whole = translate.FrameWriter(model="m", started_ns=0).whole([TextDelta("Let me check."), call, DONE], 9)
    assert whole["message"]["content"] == "Let me check." and whole["message"]["tool_calls"][0]["id"] == "toolu_9"
    assert whole["done"] is True
    assert ChatResponse.model_validate(whole).message.tool_calls[0].function.arguments == {"city": "Oslo"}


def test_generate_frames_use_response():
    writer = translate.FrameWriter(model="m", kind="generate", started_ns=0)
    frames = writer.on_event(TextDelta("Hi"), 1) + writer.on_event(DONE, 2)
    assert [f["response"] for f in frames] == ["Hi", ""] and "message" not in frames[0]
    for frame in frames:
        GenerateResponse.model_validate(frame)
    writer = translate.FrameWriter(model="m", kind="generate", started_ns=0)
    whole = writer.whole([TextDelta("a"), TextDelta("b"), DONE], 5)
    assert whole["response"] == "ab" and whole["done"] is True


def test_a_turn_without_a_result_is_an_error():
    with pytest.raises(BridgeError):
        translate.FrameWriter(model="m").whole([TextDelta("a")], 1)


@pytest.mark.parametrize(
    "keep_alive, reason", [(None, "load"), ("5m", "load"), (0, "unload"), ("0s", "unload"), ("0", "unload")]
)
def test_load_requests_answer_one_done_frame(keep_alive, reason):
    for kind in ("chat", "generate"):
        frame = translate.FrameWriter(model="m", kind=kind).load(translate.is_unload(keep_alive))
        assert frame["done"] is True and frame["done_reason"] == reason


def test_error_frame_is_ollamas_shape():
    assert translate.error_frame(InvalidRequest("bad")) == {"error": "bad"}


# -- model bodies ----------------------------------------------------------------------------
DETAILS = {"parent_model", "format", "family", "families", "parameter_size", "quantization_level"}


def test_tags_list_every_model_with_a_tag_and_full_details():
    body = translate.tags_body(["all-minilm"])
    ListResponse.model_validate(body)
    names = [m["name"] for m in body["models"]]
    assert "sonnet:latest" in names and "claude-sonnet-5-5:latest" in names and "all-minilm:latest" in names
    for model in body["models"]:
        assert model["name"] == model["model"] and ":" in model["name"]
        assert set(model["details"]) == DETAILS
        assert len(model["digest"]) == 64
        datetime.fromisoformat(model["modified_at"])


@pytest.mark.parametrize("name", ["sonnet", "sonnet:latest", "claude-opus-4-8", "claude-sonnet-9-9"])
def test_show_has_architecture_context_length_and_capabilities(name):
    body = translate.show_body(name)
    shown = ShowResponse.model_validate(body)
    architecture = shown.modelinfo["general.architecture"]
    assert shown.modelinfo[f"{architecture}.context_length"] == 200_000
    assert shown.modelinfo[f"{shown.details.family}.context_length"] == 200_000  # some clients key by family
    assert shown.capabilities == ["completion", "tools", "vision"]
    assert "num_ctx 200000" in shown.parameters and "tools" in shown.template.lower()
    assert shown.modified_at is not None


def test_show_of_an_embedding_model():
    assert translate.show_body("all-minilm:latest", embedding=True)["capabilities"] == ["embedding"]


def test_ps_lists_running_models_with_expiry():
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    body = translate.ps_body(["sonnet", "sonnet", "claude-haiku-4-5"], expires)
    shown = ProcessResponse.model_validate(body)
    assert [m.name for m in shown.models] == ["claude-haiku-4-5:latest", "sonnet:latest"]
    assert all(m.expires_at == expires for m in shown.models)
    assert datetime.fromisoformat(body["models"][0]["expires_at"]) == expires  # how Open WebUI reads it
    assert json.loads(json.dumps(body)) == body
