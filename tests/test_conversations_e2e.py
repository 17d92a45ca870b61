"""History reaches the model as real turns, and held conversations answer follow-ups warm.

The held-process tests run with UPSTREAM_TAP=off: the path kept for it (and for CLIs the
workers probe refuses). On workers every turn is served warm by any process
(test_workers_e2e.py).

Real CLI, fake upstream; assertions on the exact messages the upstream received."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from fake_upstream import Reply

pytestmark = pytest.mark.e2e


def ask(server, messages, **extra):
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    return client.chat.completions.create(model="sonnet", messages=messages, **extra)


def test_a_cold_history_arrives_as_alternating_turns_with_the_assistant_text_intact(bridge, fake):
    history = [
        {"role": "system", "content": "Keep answers short."},
        {"role": "user", "content": "What is the capital of Norway?"},
        {"role": "assistant", "content": "Oslo, on the Oslofjord."},
        {"role": "user", "content": "And its population?"},
    ]
    ask(bridge, history)
    call = fake.received[-1]
    assert call.plain_messages() == [
        ("user", "What is the capital of Norway?"),
        ("assistant", "Oslo, on the Oslofjord."),
        ("user", "And its population?"),
    ]
    assert "Keep answers short." in call.system_text


def test_a_follow_up_is_a_warm_turn_on_the_held_process(start_bridge, fake):
    server = start_bridge(SPARE_PROFILES="0", UPSTREAM_TAP="off")
    first = [{"role": "user", "content": "Tell me a fact."}]
    fake.enqueue(Reply(chunks=["Octopuses have three hearts."]))
    answer = ask(server, first).choices[0].message.content
    server.wait_idle()
    before = server.health()["pool"]
    pids_before = server.cli_pids()

    fake.enqueue(Reply(chunks=["Two pump blood to the gills."]))
    follow_up = [*first, {"role": "assistant", "content": answer}, {"role": "user", "content": "Why three?"}]
    assert ask(server, follow_up).choices[0].message.content == "Two pump blood to the gills."
    after = server.wait_idle()["pool"]
    assert after["counters"]["held"] == before["counters"]["held"] + 1
    assert after["counters"]["launched"] == before["counters"]["launched"], "a new CLI process was started"
    assert server.cli_pids() == pids_before
    assert fake.received[-1].plain_messages() == [
        ("user", "Tell me a fact."),
        ("assistant", "Octopuses have three hearts."),
        ("user", "Why three?"),
    ]


def test_an_edited_earlier_message_rebuilds_with_the_edited_text(start_bridge, fake):
    server = start_bridge(SPARE_PROFILES="0", UPSTREAM_TAP="off")
    fake.enqueue(Reply(chunks=["First answer."]))
    ask(server, [{"role": "user", "content": "Original question"}], extra_headers={"X-Conversation-Id": "conv-edit"})
    server.wait_idle()
    spawned = server.health()["pool"]["counters"]["launched"]
    edited = [
        {"role": "user", "content": "Edited question"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Next"},
    ]
    ask(server, edited, extra_headers={"X-Conversation-Id": "conv-edit"})
    status = server.wait_idle()["pool"]
    assert status["counters"]["launched"] == spawned + 1
    assert status["held"] == 1  # the diverged conversation's process was dropped with its key
    assert fake.received[-1].plain_messages() == [
        ("user", "Edited question"),
        ("assistant", "First answer."),
        ("user", "Next"),
    ]


def test_two_interleaved_chats_of_one_user_both_stay_warm(start_bridge, fake):
    """`user` names a person (LibreChat sends it on every request), not a conversation."""
    server = start_bridge(SPARE_PROFILES="0", UPSTREAM_TAP="off")
    chats = {"a": [{"role": "user", "content": "Chat A"}], "b": [{"role": "user", "content": "Chat B"}]}
    for turn in range(3):
        for name, messages in chats.items():
            answer = ask(server, messages, user="alice").choices[0].message.content
            messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": f"{name} turn {turn}"}]
    counters = server.wait_idle()["pool"]["counters"]
    assert counters["cold"] == 2 and counters["held"] == 4  # one cold start per chat, then warm turns


def test_a_regenerated_answer_is_not_answered_from_the_diverged_process(start_bridge, fake):
    server = start_bridge(SPARE_PROFILES="0")
    fake.enqueue(Reply(chunks=["Answer A"]))
    ask(server, [{"role": "user", "content": "Q"}])
    server.wait_idle()
    diverged = [
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "Answer B (regenerated)"},
        {"role": "user", "content": "More"},
    ]
    ask(server, diverged)
    assert fake.received[-1].plain_messages()[1] == ("assistant", "Answer B (regenerated)")


def test_tool_calls_and_results_arrive_as_tool_use_and_tool_result_blocks(bridge, fake):
    history = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_01abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01abc", "content": "-3 C and snowing"},
        {"role": "assistant", "content": "It is -3 C and snowing in Oslo."},
        {"role": "user", "content": "Should I bring a coat?"},
    ]
    ask(bridge, history, tools=[WEATHER_TOOL])
    messages = [m for m in fake.received[-1].messages if m["role"] in ("user", "assistant")]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    tool_use = next(b for b in messages[1]["content"] if b["type"] == "tool_use")
    # Workers offer the caller's tools under the caller's own names (tap.inject).
    assert tool_use["id"] == "toolu_01abc" and tool_use["name"] == "get_weather"
    assert tool_use["input"] == {"city": "Oslo"}
    tool_result = next(b for b in messages[2]["content"] if b["type"] == "tool_result")
    assert tool_result["tool_use_id"] == "toolu_01abc"
    assert "-3 C and snowing" in json.dumps(tool_result["content"])
    assert fake.received[-1].plain_messages()[-2:] == [
        ("assistant", "It is -3 C and snowing in Oslo."),
        ("user", "Should I bring a coat?"),
    ]


def test_a_history_calling_an_undefined_tool_is_refused_naming_it(bridge, fake):
    history = [
        {"role": "user", "content": "list files"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "Bash", "arguments": '{"command":"ls /"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "etc home"},
        {"role": "user", "content": "and now?"},
    ]
    calls = len(fake.received)
    response = httpx.post(
        f"{bridge.openai_url}/chat/completions", json={"model": "sonnet", "messages": history}, timeout=30
    )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "'Bash'" in message and "CLAUDE_CODE" not in message
    assert len(fake.received) == calls


WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def test_eviction_only_costs_a_rebuild(start_bridge, fake):
    server = start_bridge(SPARE_PROFILES="0", MAX_CONVERSATIONS="1")
    fake.enqueue(Reply(chunks=["A1"]), Reply(chunks=["B1"]), Reply(chunks=["A2"]))
    ask(server, [{"role": "user", "content": "conversation A"}])
    ask(server, [{"role": "user", "content": "conversation B"}])  # evicts A
    server.wait_idle()
    follow_up = [
        {"role": "user", "content": "conversation A"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "A again"},
    ]
    assert ask(server, follow_up).choices[0].message.content == "A2"
    assert fake.received[-1].plain_messages() == [
        ("user", "conversation A"),
        ("assistant", "A1"),
        ("user", "A again"),
    ]


def test_a_server_restart_rebuilds_from_the_history(start_bridge, fake):
    first = start_bridge()
    fake.enqueue(Reply(chunks=["Before restart."]))
    ask(first, [{"role": "user", "content": "Hi"}])
    first.stop()
    second = start_bridge()
    ask(
        second,
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Before restart."},
            {"role": "user", "content": "After restart?"},
        ],
    )
    assert fake.received[-1].plain_messages() == [
        ("user", "Hi"),
        ("assistant", "Before restart."),
        ("user", "After restart?"),
    ]


def test_a_changed_system_prompt_is_used_on_the_next_turn(start_bridge, fake):
    server = start_bridge(SPARE_PROFILES="0")
    fake.enqueue(Reply(chunks=["Ahoy."]))
    ask(server, [{"role": "system", "content": "Talk like a pirate."}, {"role": "user", "content": "Hello"}])
    ask(
        server,
        [
            {"role": "system", "content": "Talk like a butler."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Ahoy."},
            {"role": "user", "content": "Again"},
        ],
    )
    assert "Talk like a butler." in fake.received[-1].system_text
    assert "pirate" not in fake.received[-1].system_text


@pytest.mark.parametrize("header", ["x-conversation-id"])
def test_an_explicit_conversation_header_is_accepted(bridge, fake, header):
    response = httpx.post(
        f"{bridge.openai_url}/chat/completions",
        headers={header: "conv-123"},
        json={"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert response.status_code == 200


def test_ollama_tool_calls_and_results_arrive_as_tool_use_and_tool_result_blocks(bridge, fake):
    import ollama

    ollama.Client(host=bridge.ollama_url).chat(
        model="sonnet",
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}],
            },
            {"role": "tool", "content": "-3 C", "tool_name": "get_weather"},
            {"role": "assistant", "content": "It is -3 C."},
            {"role": "user", "content": "Thanks"},
        ],
        tools=[WEATHER_TOOL],
    )
    messages = [m for m in fake.received[-1].messages if m["role"] in ("user", "assistant")]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    tool_use = next(b for b in messages[1]["content"] if b["type"] == "tool_use")
    tool_result = next(b for b in messages[2]["content"] if b["type"] == "tool_result")
    assert tool_use["name"] == "get_weather" and tool_use["input"] == {"city": "Oslo"}
    assert tool_result["tool_use_id"] == tool_use["id"] and "-3 C" in json.dumps(tool_result["content"])


def test_ollama_follow_up_is_a_warm_turn(start_bridge, fake):
    import ollama

    server = start_bridge(SPARE_PROFILES="0", UPSTREAM_TAP="off")
    client = ollama.Client(host=server.ollama_url)
    fake.enqueue(Reply(chunks=["Blue."]))
    first = [{"role": "user", "content": "Sky colour?"}]
    answer = client.chat(model="sonnet", messages=first).message.content
    server.wait_idle()
    spawned = server.health()["pool"]["counters"]["launched"]
    client.chat(
        model="sonnet", messages=[*first, {"role": "assistant", "content": answer}, {"role": "user", "content": "Why?"}]
    )
    pool = server.wait_idle()["pool"]
    assert pool["counters"]["launched"] == spawned and pool["counters"]["held"] >= 1
    assert fake.received[-1].plain_messages() == [("user", "Sky colour?"), ("assistant", "Blue."), ("user", "Why?")]
