"""The tap with the real CLI: the bridge's servers send every upstream request through it,
the fake upstream stands behind it. The model never sees the CLI's environment note (fresh
conversations, follow-ups, history, after tool results) unless KEEP_CLI_ENVIRONMENT_NOTE is
on; an API-key login (no rate_limit_event lines) still gets its windows from the headers;
UPSTREAM_TAP=off is the direct connection of before."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import openai
import pytest
from fake_upstream import Reply, unified_headers, weather_model
from harness import cli_sends_environment_note

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

NOTE = "# Environment"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


# CLI 2.1.277 adds its note only beside a system prompt of the caller's; 2.1.332 always.
SYSTEM = {"role": "system", "content": "Be brief."}


def anywhere(body: dict, text: str) -> bool:
    return text in json.dumps(body, ensure_ascii=False)


def test_the_environment_note_never_reaches_the_upstream(bridge, fake):
    client = openai.OpenAI(base_url=bridge.openai_url, api_key="x")
    messages = [SYSTEM, {"role": "user", "content": "first"}]
    answer = client.chat.completions.create(model="sonnet", messages=messages, user="conv-note")
    messages += [{"role": "assistant", "content": answer.choices[0].message.content}, {"role": "user", "content": "2"}]
    client.chat.completions.create(model="sonnet", messages=messages, user="conv-note")  # a follow-up
    history = [
        SYSTEM,
        {"role": "user", "content": "old question"},
        {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": "new question"},
    ]
    client.chat.completions.create(model="sonnet", messages=history)  # rebuilt from history
    calls = fake.model_calls()
    assert len(calls) >= 3
    for call in calls:
        assert not anywhere(call.body, NOTE), call.body["messages"]
        assert not anywhere(call.body, "Primary working directory")
    # The rest of what the CLI sends stays: its identity line, the billing header, the caller's text.
    last = calls[-1]
    assert "Claude Agent SDK" in last.system_text and "x-anthropic-billing-header" in last.system_text
    assert [text for role, text in last.plain_messages() if role in ("user", "assistant")][-3:] == [
        "old question",
        "old answer",
        "new question",
    ]
    if cli_sends_environment_note():
        assert bridge.health()["upstream_tap"]["notes_removed"] >= 3


def test_the_text_after_a_tool_result_is_the_callers_own(bridge, fake):
    fake.handler = weather_model
    client = anthropic.Anthropic(base_url=bridge.base_url, api_key="x")
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER["function"]["parameters"]}]
    caller_text = "Here is the result; answer in one word.  \n(kept byte for byte: ü ✓)"
    messages = [
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "-3 C"},
                {"type": "text", "text": caller_text},
            ],
        },
    ]
    response = client.messages.create(
        model="sonnet", max_tokens=100, system="Be brief.", messages=messages, tools=tools
    )
    assert response.stop_reason == "end_turn"
    body = fake.model_calls()[-1].body
    assert not anywhere(body, NOTE)
    last_user = [m for m in body["messages"] if m["role"] == "user"][-1]
    blocks = last_user["content"]
    result_at = next(n for n, b in enumerate(blocks) if b.get("type") == "tool_result")
    after = [b["text"] for b in blocks[result_at + 1 :] if b.get("type") == "text"]
    # The caller's text comes first, as written (the CLI separates it from its own
    # continuation prompt with a newline, as without the tap), and no note of the CLI's.
    assert after[0] in (caller_text, caller_text + "\n")
    assert all(NOTE not in text for text in after)


def test_keep_cli_environment_note_on_forwards_it(start_bridge, fake):
    if not cli_sends_environment_note():
        pytest.skip("this CLI version sends no environment note")
    server = start_bridge(KEEP_CLI_ENVIRONMENT_NOTE="on")
    client = openai.OpenAI(base_url=server.openai_url, api_key="x")
    client.chat.completions.create(model="sonnet", messages=[SYSTEM, {"role": "user", "content": "hi"}])
    assert anywhere(fake.model_calls()[-1].body, NOTE)


def test_windows_come_from_the_headers_with_an_api_key_login(bridge, fake):
    now = int(time.time())
    fake.default_reply = Reply(
        headers=unified_headers(five_hour=(0.31, now + 1800), seven_day=(0.64, now + 86400), claim="seven_day")
    )
    try:
        client = openai.OpenAI(base_url=bridge.openai_url, api_key="x")
        client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}])
    finally:
        fake.default_reply = Reply()
    assert "x-api-key" in fake.model_calls()[-1].headers  # an API-key login: the CLI emits no rate-limit event
    subscription = bridge.health()["subscription"]
    assert (subscription["status"], subscription["limiting"]) == ("allowed", "seven_day")
    five, seven = subscription["windows"]["five_hour"], subscription["windows"]["seven_day"]
    assert (five["percent"], five["resets_at"]) == (31.0, now + 1800)
    assert (seven["percent"], seven["resets_at"]) == (64.0, now + 86400)


def test_upstream_tap_off_connects_the_cli_directly(start_bridge, fake):
    server = start_bridge(UPSTREAM_TAP="off")
    response = httpx.post(
        f"{server.openai_url}/chat/completions",
        json={"model": "sonnet", "messages": [SYSTEM, {"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert server.health()["upstream_tap"] is None
    if cli_sends_environment_note():
        assert anywhere(fake.model_calls()[-1].body, NOTE)  # what the CLI sends, as before the tap


def test_what_the_model_saw_is_on_the_dashboard_with_log_content_only(start_bridge, fake):
    server = start_bridge(LOG_CONTENT="on", BRIDGE_API_KEY="bridge-key-1")
    key = {"authorization": "Bearer bridge-key-1"}
    url = f"{server.base_url}/dashboard/model-context/data"
    assert httpx.get(url, timeout=10).status_code == 401  # behind the key
    for n in range(3):
        response = httpx.post(
            f"{server.openai_url}/chat/completions",
            json={"model": "sonnet", "messages": [{"role": "user", "content": f"what the model saw {n}"}]},
            headers=key,
            timeout=60,
        )
        assert response.status_code == 200, response.text
    data = httpx.get(url, headers=key, timeout=10).json()
    assert data["enabled"] is True
    newest = data["requests"][0]
    assert json.loads(newest["request_body"])["messages"][0]["content"][0]["text"] == "what the model saw 2"
    assert newest["status"] == 200 and newest["label"] == "default" and "content-type" in newest["response_headers"]
    assert len(data["requests"]) <= 20  # bounded
    assert "sk-ant-test-key" not in json.dumps(data)  # the login never is kept
    page = httpx.get(f"{server.base_url}/dashboard/model-context", headers=key, timeout=10)
    assert page.status_code == 200 and "what the model saw 2" in page.text


def test_what_the_model_saw_is_off_by_default(bridge, fake):
    data = httpx.get(f"{bridge.base_url}/dashboard/model-context/data", timeout=10).json()
    assert data == {"enabled": False, "note": data["note"], "requests": []} and "LOG_CONTENT" in data["note"]
