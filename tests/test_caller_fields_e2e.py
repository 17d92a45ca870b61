"""Caller text in the places operators look: model names are checked before anything uses
them (never onto the CLI's argv), and nothing a caller sent (nor the model's answer) reaches
the server's log unless LOG_CONTENT is on, on every surface, with the real CLI."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest
from fake_upstream import Reply
from harness import find_test_cli

pytestmark = pytest.mark.e2e

BAD_NAMES = {
    "200 KB": "claude-" + "a" * 200_000,
    "NUL": "claude-a\x00b",
    "escape": "claude-\x1b[31mred",
    "newline": "claude-a\nb",
    "257 characters": "claude-" + "a" * 250,
}


def _recording_cli(tmp_path: Path) -> tuple[Path, Path]:
    """A wrapper that appends every argument of every CLI start to ``argv.log``."""
    log, wrapper = tmp_path / "argv.log", tmp_path / "claude"
    wrapper.write_text(
        f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a" >> "{log}"; done\nexec "{find_test_cli()}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, log


def _surfaces(server):
    o = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    a = anthropic.Anthropic(base_url=server.base_url, api_key="x", max_retries=0)
    ol = ollama.Client(host=server.ollama_url)
    hi = [{"role": "user", "content": "hi"}]
    return {
        "chat": lambda model: o.chat.completions.create(model=model, messages=hi),
        "responses": lambda model: o.responses.create(model=model, input="hi"),
        "completions": lambda model: o.completions.create(model=model, prompt="hi"),
        "messages": lambda model: a.messages.create(model=model, max_tokens=16, messages=hi),
        "ollama chat": lambda model: ol.chat(model=model, messages=hi),
        "ollama generate": lambda model: ol.generate(model=model, prompt="hi"),
    }


def _status_and_message(exc: Exception) -> tuple[int, str]:
    if isinstance(exc, ollama.ResponseError):
        return exc.status_code, exc.error
    assert isinstance(exc, (openai.APIStatusError, anthropic.APIStatusError)), repr(exc)
    return exc.status_code, exc.response.text


def test_bad_model_names_are_4xx_in_shape_on_every_surface_and_never_reach_argv(start_bridge, fake, tmp_path):
    wrapper, argv_log = _recording_cli(tmp_path)
    server = start_bridge(CLAUDE_CLI_PATH=str(wrapper))
    cli_path = find_test_cli()
    for surface, call in _surfaces(server).items():
        for what, name in BAD_NAMES.items():
            with pytest.raises(Exception) as raised:
                call(name)
            status, message = _status_and_message(raised.value)
            assert 400 <= status < 500, f"{surface}, {what}: {status} {message[:300]}"
            for leak in ("Errno", "Argument list", cli_path, str(tmp_path)):
                assert leak not in message, f"{surface}, {what}: {message[:300]}"
    recorded = argv_log.read_text() if argv_log.exists() else ""
    assert "a" * 250 not in recorded and "\x1b" not in recorded and "a\nb" not in recorded
    assert all(len(arg) < 1000 for arg in recorded.splitlines())
    assert server.proc.poll() is None  # and the server is still serving
    assert _surfaces(server)["chat"]("sonnet").choices[0].message.content == "Hello from the fake."


MARK = "SECRET-c4ll3r"


def _bad_requests() -> list[tuple[str, dict, dict]]:
    """(path, body, headers): each refused, most with a message that quotes the caller."""
    calls = [{"id": f"call_{MARK}-id", "type": "function", "function": {"name": f"{MARK}-tool", "arguments": "{}"}}]
    tool_history = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": f"call_{MARK}-id", "content": "sunny"},
        {"role": "user", "content": "thanks"},
    ]
    hi = [{"role": "user", "content": f"hi {MARK}-prompt"}]
    anthropic_tools = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": f"toolu_{MARK}", "name": f"{MARK}-tool", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{MARK}", "content": "sunny"}]},
    ]
    headers = {"x-conversation-id": f"{MARK}-conversation", "x-custom": f"{MARK}-header"}
    return [
        ("/v1/chat/completions", {"model": f"{MARK}-model", "messages": hi, "user": f"{MARK}-user"}, headers),
        ("/v1/chat/completions", {"model": "sonnet", "messages": tool_history, "user": f"{MARK}-user"}, headers),
        ("/v1/chat/completions", {"model": "sonnet", "messages": hi, "reasoning_effort": f"{MARK}-effort"}, {}),
        ("/v1/chat/completions", {"model": "sonnet", "messages": hi, "temperature": f"{MARK}-value"}, {}),
        ("/v1/chat/completions", {"model": "sonnet", "messages": hi, "stream": True, "user": f"{MARK}-user"}, headers),
        ("/v1/responses", {"model": f"{MARK}-model", "input": f"hi {MARK}"}, headers),
        ("/v1/responses", {"model": "sonnet", "input": "hi", "previous_response_id": f"resp_{MARK}"}, {}),
        (
            "/v1/responses",
            {"model": "sonnet", "input": "hi", "tools": [{"type": f"{MARK}-hosted"}]},
            {},
        ),
        ("/v1/completions", {"model": f"{MARK}-model", "prompt": f"hi {MARK}", "user": f"{MARK}-user"}, headers),
        ("/v1/messages", {"model": f"{MARK}-model", "max_tokens": 9, "messages": hi}, headers),
        ("/v1/messages", {"model": "sonnet", "max_tokens": 9, "messages": anthropic_tools}, headers),
        ("/api/chat", {"model": f"{MARK}-model", "messages": hi}, headers),
        ("/api/chat", {"model": "sonnet", "messages": hi, "stream": False, "format": {"type": f"{MARK}-type"}}, {}),
        ("/api/generate", {"model": f"{MARK}-model", "prompt": f"hi {MARK}"}, headers),
        ("/api/show", {"model": f"{MARK}-model"}, headers),
    ]


def test_nothing_a_caller_sent_reaches_the_log_at_debug_level_on_any_surface(start_bridge, fake):
    server = start_bridge(LOG_LEVEL="debug")
    quoted = 0
    for path, body, headers in _bad_requests():
        base = server.ollama_url if path.startswith("/api/") else server.base_url
        response = httpx.post(base + path, json=body, headers=headers, timeout=60)
        quoted += MARK in response.text  # the caller still gets the helpful message
    for url in (f"{server.openai_url}/responses/resp_{MARK}", f"{server.openai_url}/{MARK}-path"):
        assert httpx.get(url, headers={"x-custom": f"{MARK}-header"}, timeout=30).status_code == 404
    assert quoted >= 5
    fake.enqueue(Reply(chunks=[f"{MARK}-answer"]))  # and a turn that is answered: prompt and answer
    answered = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0).chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": f"{MARK}-prompt answered"}]
    )
    assert answered.choices[0].message.content == f"{MARK}-answer"
    server.stop()
    log = server.log_path.read_text(errors="replace")
    leaked = [line[:300] for line in log.splitlines() if MARK in line]
    assert not leaked, leaked


def test_with_log_content_on_the_prompt_and_the_answer_are_logged(start_bridge, fake):
    """The control: LOG_CONTENT puts caller text in the log, so the test above can see it."""
    server = start_bridge(LOG_CONTENT="true")
    fake.enqueue(Reply(chunks=[f"{MARK}-answer"]))
    httpx.post(
        f"{server.openai_url}/chat/completions",
        json={"model": "sonnet", "messages": [{"role": "user", "content": f"hi {MARK}"}]},
        timeout=60,
    )
    server.stop()
    log = server.log_path.read_text(errors="replace")
    assert f"hi {MARK}" in log and f"{MARK}-answer" in log


def test_a_tool_history_error_log_line_names_its_code_not_the_tool(start_bridge, fake):
    server = start_bridge()
    path, body, headers = _bad_requests()[1]
    response = httpx.post(server.base_url + path, json=body, headers=headers, timeout=60)
    assert response.status_code == 400 and f"{MARK}-tool" in response.json()["error"]["message"]
    server.stop()
    lines = [line for line in server.log_path.read_text().splitlines() if "POST /v1/chat/completions" in line]
    assert lines and "status=400" in lines[-1] and "error='invalid_request_error'" in lines[-1]
    assert os.environ.get("LOG_CONTENT", "").lower() not in ("1", "true")
