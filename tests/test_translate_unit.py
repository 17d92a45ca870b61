"""Pure translators and parsers, table-style: OpenAI requests/chunks, CLI lines, stops, models."""

from __future__ import annotations

import base64
import json

import pytest

from claude_cli_bridge.api.openai import translate
from claude_cli_bridge.api.openai.protocol import ChatCompletionRequest
from claude_cli_bridge.api.parts import MediaLimits
from claude_cli_bridge.cli.wire import TurnParser, write_transcript
from claude_cli_bridge.core.images import image_from_base64, image_from_data_url, sniff_media_type
from claude_cli_bridge.core.messages import (
    ImageBlock,
    Message,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    history_fingerprint,
)
from claude_cli_bridge.core.models import resolve_model
from claude_cli_bridge.core.stops import StopScanner
from claude_cli_bridge.core.turn import TextDelta, ToolCall, TurnDone, Usage
from claude_cli_bridge.errors import CliNotLoggedIn, InvalidRequest, ModelNotFound, RequestTooLarge, UpstreamError
from claude_cli_bridge.settings import DEFAULT_LEGACY_MODELS

pytestmark = pytest.mark.unit

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


def chat(**body):
    return translate.from_chat_request(ChatCompletionRequest.model_validate(body), MediaLimits.of(1 << 20))


# -- OpenAI requests -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "messages, system, expected",
    [
        ([{"role": "user", "content": "hi"}], None, [Message("user", (TextBlock("hi"),))]),
        (
            [
                {"role": "system", "content": "S"},
                {"role": "developer", "content": "D"},
                {"role": "user", "content": "u"},
            ],
            "S\n\nD",
            [Message("user", (TextBlock("u"),))],
        ),
        (
            [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": [{"type": "text", "text": "c"}]},
            ],
            None,
            [
                Message("user", (TextBlock("a"),)),
                Message("assistant", (TextBlock("b"),)),
                Message("user", (TextBlock("c"),)),
            ],
        ),
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            None,
            [Message("user", (TextBlock("a"), TextBlock("b")))],
        ),
        (
            [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "cold"},
                {"role": "user", "content": "thanks"},
            ],
            None,
            [
                Message("user", (TextBlock("weather?"),)),
                Message("assistant", (ToolUseBlock("call_1", "get", '{"city":"Oslo"}'),)),
                Message("user", (ToolResultBlock("call_1", (TextBlock("cold"),)), TextBlock("thanks"))),
            ],
        ),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}}
                    ],
                }
            ],
            None,
            [Message("user", (ImageBlock("image/png", PNG),))],
        ),
    ],
)
def test_from_chat_request_builds_real_turns(messages, system, expected):
    turn = chat(model="sonnet", messages=messages)
    assert turn.system == system
    assert turn.messages == expected


@pytest.mark.parametrize(
    "extra, field, value",
    [
        ({"max_tokens": 10}, "max_tokens", 10),
        ({"max_completion_tokens": 20, "max_tokens": 10}, "max_tokens", 20),
        ({"stop": "END"}, "stop", ("END",)),
        ({"stop": ["a", "b"]}, "stop", ("a", "b")),
        ({"user": "u1"}, "conversation_key", None),  # `user` is a person, not a conversation
        ({"id": "conv-9", "user": "u1"}, "conversation_key", "conv-9"),
        ({"response_format": {"type": "json_object"}}, "json_schema", {"type": "object"}),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}}},
            "json_schema",
            {"type": "array"},
        ),
        ({"temperature": 0.2, "top_p": 0.9, "seed": 3, "logit_bias": {}}, "max_tokens", None),
    ],
)
def test_from_chat_request_fields(extra, field, value):
    turn = chat(model="sonnet", messages=[{"role": "user", "content": "x"}], **extra)
    assert getattr(turn, field) == value


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"n": 2}, "n > 1"),
        ({"messages": [{"role": "system", "content": "only system"}]}, "user message"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, "input_audio"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
                ]
            },
            "data URL",
        ),
        ({"messages": [{"role": "tool", "content": "r"}]}, "tool_call_id"),
    ],
)
def test_from_chat_request_rejects_what_it_cannot_honour(body, fragment):
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "x"}], **body}
    with pytest.raises(InvalidRequest) as caught:
        chat(**body)
    assert fragment in caught.value.message


# -- OpenAI responses ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "stop_reason, finish",
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("other", "stop"),
    ],
)
def test_finish_reasons(stop_reason, finish):
    assert translate.finish_reason(stop_reason) == finish


def test_chunk_writer_sends_role_once_then_content_finish_and_usage():
    writer = translate.ChunkWriter(model="sonnet", include_usage=True)
    chunks = writer.on_event(TextDelta("Hel")) + writer.on_event(TextDelta("lo"))
    chunks += writer.on_event(TurnDone("end_turn", Usage(3, 2, 1, 0)))
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in chunks]
    assert deltas[:3] == [{"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}]
    assert chunks[3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[4]["choices"] == [] and chunks[4]["usage"]["prompt_tokens"] == 4
    assert len({c["id"] for c in chunks}) == 1


def test_chunk_writer_tool_call_sends_id_and_name_once_then_arguments():
    writer = translate.ChunkWriter(model="m")
    chunks = writer.on_event(ToolCall("toolu_1", "lookup", {}))
    first, second = chunks[1]["choices"][0]["delta"]["tool_calls"][0], chunks[2]["choices"][0]["delta"]["tool_calls"][0]
    assert first == {"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
    assert second == {"index": 0, "function": {"arguments": "{}"}}  # Cline needs non-empty arguments


def test_to_completion_with_tool_calls():
    body = translate.to_completion(
        "", [ToolCall("t1", "f", {"a": 1})], TurnDone("tool_use", Usage(1, 1)), model="m", completion_id="c", created=1
    )
    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"a": 1}
    assert body["choices"][0]["finish_reason"] == "tool_calls"


# -- CLI lines -------------------------------------------------------------------------------
def stream_event(event):
    return {"type": "stream_event", "event": event}


def test_turn_parser_text_usage_and_result():
    parser = TurnParser()
    events = []
    for line in [
        {"type": "system", "subtype": "init", "model": "claude-x"},
        stream_event({"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 5}}}),
        stream_event({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}}),
        {"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": "Hi"}]}},
        stream_event({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}}),
        {
            "type": "result",
            "is_error": False,
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 5, "output_tokens": 1, "cache_read_input_tokens": 2},
        },
    ]:
        events += parser.feed(line)
    assert events == [TextDelta("Hi"), TurnDone("end_turn", Usage(5, 1, 2, 0), "claude-x")]
    assert parser.done and not parser.cut_short


def test_turn_parser_passes_on_a_non_streamed_fallback_answer():
    parser = TurnParser()
    events = parser.feed({"type": "assistant", "message": {"id": "m9", "content": [{"type": "text", "text": "whole"}]}})
    assert events == [TextDelta("whole")]


def test_turn_parser_refuses_to_repeat_text_after_a_broken_stream():
    parser = TurnParser()
    parser.feed(stream_event({"type": "message_start", "message": {"id": "m1"}}))
    parser.feed(stream_event({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "par"}}))
    with pytest.raises(UpstreamError):
        parser.feed({"type": "system", "subtype": "api_retry"})


def test_turn_parser_stops_at_max_tokens():
    parser = TurnParser()
    parser.feed(stream_event({"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 4}}}))
    events = parser.feed(
        stream_event({"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 9}})
    )
    assert events == [TurnDone("max_tokens", Usage(4, 9), "")]
    assert parser.cut_short


@pytest.mark.parametrize(
    "result, error, status",
    [
        ({"api_error_status": 401, "result": "Invalid API key"}, UpstreamError, 401),
        ({"api_error_status": 429, "result": "rate limited"}, UpstreamError, 429),
        ({"api_error_status": 529, "result": "Overloaded"}, UpstreamError, 503),
        ({"api_error_status": 500, "result": "boom"}, UpstreamError, 502),
        ({"api_error_status": None, "result": "Connection error"}, UpstreamError, 502),
        ({"api_error_status": None, "result": "Not logged in · Please run /login"}, CliNotLoggedIn, 401),
    ],
)
def test_turn_parser_maps_failed_results(result, error, status):
    with pytest.raises(error) as caught:
        TurnParser().feed({"type": "result", "is_error": True, **result})
    assert caught.value.status == status


def test_transcript_chains_records_and_ends_with_assistant(tmp_path):
    path = tmp_path / "t.jsonl"
    write_transcript([Message("user", (TextBlock("q"),)), Message("assistant", (TextBlock("a"),))], path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["type"] for r in records] == ["user", "assistant"]
    assert records[0]["parentUuid"] is None and records[1]["parentUuid"] == records[0]["uuid"]
    assert len({r["sessionId"] for r in records}) == 1 and all(r["timestamp"] for r in records)
    with pytest.raises(ValueError):
        write_transcript([Message("user", (TextBlock("q"),))], path)


# -- stops, models, images, fingerprints ------------------------------------------------------
@pytest.mark.parametrize(
    "stops, pieces, released, hit",
    [
        ((), ["ab", "cd"], "abcd", False),
        (("END",), ["ab", "cE", "N", "D more"], "abc", True),
        (("END",), ["ab", "cE", "N", "x"], "abcENx", False),
        (("\n\n", "###"), ["line\n", "\nrest"], "line", True),
        (("stop",), ["sto"], "sto", False),
    ],
)
def test_stop_scanner(stops, pieces, released, hit):
    scanner = StopScanner(stops)
    out = "".join(scanner.feed(piece) for piece in pieces) + scanner.flush()
    assert out == released and scanner.hit == hit


@pytest.mark.parametrize(
    "requested, resolved",
    [
        (None, "sonnet"),
        ("", "sonnet"),
        ("haiku", "haiku"),
        ("sonnet:latest", "sonnet"),
        ("claude-sonnet-5-5", "claude-sonnet-5-5"),
        ("claude-opus-4-8:latest", "claude-opus-4-8"),
        ("claude-3-5-sonnet-20241022", "sonnet"),
        ("claude-3-5-haiku-latest", "haiku"),
        ("claude-3-opus-20240229", "opus"),
        ("anthropic/claude-3-7-sonnet", "sonnet"),
    ],
)
def test_resolve_model(requested, resolved):
    assert resolve_model(requested, "sonnet", DEFAULT_LEGACY_MODELS) == resolved


@pytest.mark.parametrize("name", ["gpt-4o", "llama3", "sonnet:7b"])
def test_resolve_model_rejects_other_models(name):
    with pytest.raises(ModelNotFound):
        resolve_model(name, "sonnet", DEFAULT_LEGACY_MODELS)


@pytest.mark.parametrize(
    "raw, media_type",
    [
        (b"\x89PNG\r\n\x1a\nxxxx", "image/png"),
        (b"\xff\xd8\xff\xe0xxxx", "image/jpeg"),
        (b"GIF89axxxx", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.4", None),
    ],
)
def test_sniff_media_type(raw, media_type):
    assert sniff_media_type(raw) == media_type


def test_images_keep_the_clients_base64_and_name_problems():
    assert image_from_data_url(f"data:image/png;base64,{PNG}", 1000, "m").data == PNG
    assert image_from_base64(PNG, 1000, "m") == ImageBlock("image/png", PNG)
    with pytest.raises(InvalidRequest, match="base64"):
        image_from_base64("not base64!!", 1000, "m")
    with pytest.raises(InvalidRequest, match="unsupported"):
        image_from_base64(base64.b64encode(b"plain text").decode(), 1000, "m")
    with pytest.raises(RequestTooLarge):
        image_from_base64(PNG, 10, "m")


def test_history_fingerprint_ignores_whitespace_and_split_text_only():
    a = [Message("assistant", (TextBlock("Hello "), TextBlock("world\n")))]
    b = [Message("assistant", (TextBlock("Hello world"),))]
    c = [Message("assistant", (TextBlock("Hello there"),))]
    assert history_fingerprint(a) == history_fingerprint(b) != history_fingerprint(c)


def test_the_cli_environment_is_quiet_bounded_and_free_of_the_bridges_keys():
    from claude_cli_bridge.cli.launch import LaunchFiles, build_argv
    from claude_cli_bridge.cli.profile import Profile

    env = Profile(model="sonnet", max_tokens=50).env(
        {"ANTHROPIC_BASE_URL": "http://x", "BRIDGE_API_KEY": "secret", "CLAUDE_CODE_SIMPLE": "1", "PATH": "/bin"}, 1
    )
    assert env["ANTHROPIC_BASE_URL"] == "http://x" and env["PATH"] == "/bin"
    assert "BRIDGE_API_KEY" not in env and "CLAUDE_CODE_SIMPLE" not in env
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "1" and env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "50"
    assert env["CLAUDE_CODE_DISABLE_CLAUDE_MDS"] == "1" and env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["CLAUDE_CODE_DISABLE_ATTACHMENTS"] == "1"
    argv = build_argv("claude", Profile(model="sonnet"), LaunchFiles())
    assert argv[argv.index("--tools") + 1] == "" and argv[argv.index("--setting-sources") + 1] == ""
    assert "--strict-mcp-config" in argv and "--disable-slash-commands" in argv and "--bare" not in argv
    assert argv[argv.index("--system-prompt") + 1] == ""  # never Claude Code's agent prompt
