"""Reasoning end to end: effort requests reach the upstream as ``output_config.effort``, and
the model's thinking comes back where each API's clients read it (OpenAI ``reasoning_content``,
Ollama ``message.thinking``, Anthropic ``thinking`` blocks, a Responses ``reasoning`` item),
never inside the answer's content. Real CLI, fake upstream, the clients' own SDKs."""

from __future__ import annotations

import anthropic
import ollama
import openai
import pytest
from fake_upstream import Reply
from harness import cli_default_effort

pytestmark = pytest.mark.e2e

THINKING = ["The user greets me. ", "I should greet back."]
ANSWER = ["Hello", " there!"]


def thinking_reply() -> Reply:
    return Reply(thinking=THINKING, chunks=ANSWER, output_tokens=17)


def openai_client(bridge) -> openai.OpenAI:
    return openai.OpenAI(base_url=bridge.openai_url, api_key="unused", max_retries=0)


# -- OpenAI ------------------------------------------------------------------------------------
def test_openai_stream_reasoning_effort_high_reaches_the_upstream_and_thinking_streams_first(bridge, fake):
    fake.enqueue(thinking_reply())
    stream = openai_client(bridge).chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "Hi"}],
        reasoning_effort="high",
        stream=True,
        stream_options={"include_usage": True},
    )
    order, reasoning, content, usage = [], [], [], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            extra = choice.delta.model_extra or {}
            if extra.get("reasoning_content"):
                reasoning.append(extra["reasoning_content"])
                order.append("reasoning")
            if choice.delta.content:
                content.append(choice.delta.content)
                order.append("content")
    assert "".join(reasoning) == "".join(THINKING)
    assert "".join(content) == "".join(ANSWER)
    assert order.index("content") > max(i for i, kind in enumerate(order) if kind == "reasoning")
    assert usage is not None and usage.completion_tokens == 17  # the upstream's count, thinking included
    call = fake.received[-1]
    assert call.effort == "high"
    assert call.body["thinking"]["type"] == "adaptive"


def test_openai_non_streaming_returns_reasoning_content_apart_from_content(bridge, fake):
    fake.enqueue(thinking_reply())
    completion = openai_client(bridge).chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "Hi"}], reasoning_effort="low"
    )
    message = completion.choices[0].message
    assert message.content == "".join(ANSWER)
    assert (message.model_extra or {}).get("reasoning_content") == "".join(THINKING)
    assert fake.received[-1].effort == "low"


def test_openai_minimal_is_low_and_none_turns_thinking_off(bridge, fake):
    client = openai_client(bridge)
    client.chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "a"}], reasoning_effort="minimal"
    )
    assert fake.received[-1].effort == "low"
    client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "b"}], reasoning_effort="none")
    assert "thinking" not in fake.received[-1].body
    client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "c"}])
    # No reasoning_effort: nothing is passed, the CLI asks for its own default (by version),
    # not the "low" of the requests before.
    assert fake.received[-1].effort == (cli_default_effort() or fake.received[-1].effort) != "low"


def test_thinking_a_caller_sends_back_is_not_sent_as_text(bridge, fake):
    fake.enqueue(thinking_reply())
    client = openai_client(bridge)
    first = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "Hi"}])
    echoed = first.choices[0].message.model_dump(exclude_none=True)  # reasoning_content included
    assert echoed["reasoning_content"] == "".join(THINKING)
    client.chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "Hi"}, echoed, {"role": "user", "content": "Again"}]
    )
    sent = str(fake.received[-1].plain_messages())
    assert "Again" in sent and "".join(ANSWER) in sent
    assert "greet back" not in sent


# -- Ollama ------------------------------------------------------------------------------------
def test_ollama_think_high_reaches_the_upstream_and_thinking_is_returned(bridge, fake):
    client = ollama.Client(host=bridge.ollama_url)
    fake.enqueue(thinking_reply())
    response = client.chat(model="sonnet", messages=[{"role": "user", "content": "Hi"}], think="high")
    assert response.message.thinking == "".join(THINKING)
    assert response.message.content == "".join(ANSWER)
    assert fake.received[-1].effort == "high"

    fake.enqueue(thinking_reply())
    parts = list(client.chat(model="sonnet", messages=[{"role": "user", "content": "Hi"}], think=True, stream=True))
    assert "".join(p.message.thinking or "" for p in parts) == "".join(THINKING)
    assert "".join(p.message.content or "" for p in parts) == "".join(ANSWER)
    assert fake.received[-1].effort == (cli_default_effort() or fake.received[-1].effort)  # think=True: the default
    assert parts[-1].done and parts[-1].eval_count == 17


def test_ollama_without_think_returns_no_thinking_and_think_false_turns_it_off(bridge, fake):
    client = ollama.Client(host=bridge.ollama_url)
    fake.enqueue(thinking_reply())
    response = client.chat(model="sonnet", messages=[{"role": "user", "content": "Hi"}])
    assert response.message.thinking is None
    assert response.message.content == "".join(ANSWER)
    client.chat(model="sonnet", messages=[{"role": "user", "content": "Hi"}], think=False)
    assert "thinking" not in fake.received[-1].body


def test_ollama_generate_returns_thinking_beside_the_response(bridge, fake):
    fake.enqueue(thinking_reply())
    response = ollama.Client(host=bridge.ollama_url).generate(model="sonnet", prompt="Hi", think="low")
    assert response.thinking == "".join(THINKING)
    assert response.response == "".join(ANSWER)
    assert fake.received[-1].effort == "low"


def test_langchain_chat_ollama_reasoning_gets_the_thinking(bridge, fake):
    from langchain_ollama import ChatOllama

    fake.enqueue(thinking_reply())
    answer = ChatOllama(model="sonnet", base_url=bridge.ollama_url, reasoning=True).invoke("Hi")
    assert answer.content == "".join(ANSWER)
    assert answer.additional_kwargs["reasoning_content"] == "".join(THINKING)


def test_ollama_thinking_sent_back_in_history_is_dropped(bridge, fake):
    client = ollama.Client(host=bridge.ollama_url)
    client.chat(
        model="sonnet",
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello", "thinking": "secret musings"},
            {"role": "user", "content": "Again"},
        ],
    )
    sent = str(fake.received[-1].body["messages"])
    assert "Hello" in sent and "secret musings" not in sent


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def thinking_weather_model(body: dict) -> Reply:
    """Thinks, then calls the tool; answers once the result is back."""
    from fake_upstream import ToolUse

    answered = any(
        block.get("type") == "tool_result"
        for message in body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
    )
    if answered:
        return Reply(chunks=["Cold."])
    return Reply(
        thinking=["I need the weather."],
        signature="sig-weather-1",
        chunks=[],
        tool_uses=[ToolUse("mcp__client__get_weather", {"city": "Oslo"})],
    )


def test_the_thinking_before_a_tool_call_goes_back_signed_with_the_results(bridge, fake):
    """With thinking on, the upstream wants the calling turn back with its signed thinking;
    the caller cannot send it, so the bridge keeps it until the results come."""
    fake.handler = thinking_weather_model
    client = openai_client(bridge)
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
    message = first.choices[0].message
    assert (message.model_extra or {}).get("reasoning_content") == "I need the weather."
    [call] = message.tool_calls
    echoed = message.model_dump(exclude_none=True)
    echoed.pop("reasoning_content")
    messages += [echoed, {"role": "tool", "tool_call_id": call.id, "content": "-3 C"}]
    second = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "Cold."
    calling = next(
        m
        for m in fake.received[-1].messages
        if m["role"] == "assistant" and any(b.get("type") == "tool_use" for b in m["content"])
    )
    assert calling["content"][0] == {
        "type": "thinking",
        "thinking": "I need the weather.",
        "signature": "sig-weather-1",
    }


def test_ollama_tool_continuation_gets_the_signed_thinking_back_without_ids(bridge, fake):
    """ollama-python drops call ids: the thinking is found by the call's name and input."""
    fake.handler = thinking_weather_model
    client = ollama.Client(host=bridge.ollama_url)
    tools = [WEATHER]
    messages: list = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat(model="sonnet", messages=messages, tools=tools)
    [call] = first.message.tool_calls
    messages += [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": call.function.name, "arguments": dict(call.function.arguments)}}],
        },
        {"role": "tool", "tool_name": "get_weather", "content": "-3 C"},
    ]
    assert client.chat(model="sonnet", messages=messages, tools=tools).message.content == "Cold."
    calling = next(
        m
        for m in fake.received[-1].messages
        if m["role"] == "assistant" and any(b.get("type") == "tool_use" for b in m["content"])
    )
    assert calling["content"][0]["signature"] == "sig-weather-1"


# -- Anthropic Messages and Responses ------------------------------------------------------
THINKING_REPLY = Reply(thinking=["Let me ", "think."], chunks=["The ", "answer."])


@pytest.fixture
def claude(bridge):
    return anthropic.Anthropic(base_url=bridge.base_url, api_key="x", max_retries=0)


@pytest.fixture
def client(bridge):
    return openai.OpenAI(base_url=bridge.openai_url, api_key="x", max_retries=0)


def test_anthropic_thinking_is_shown_when_enabled_and_effort_reaches_the_upstream(claude, fake):
    fake.enqueue(THINKING_REPLY)
    message = claude.messages.create(
        model="sonnet",
        max_tokens=256,
        thinking={"type": "enabled", "budget_tokens": 1024},
        output_config={"effort": "high"},
        messages=[{"role": "user", "content": "Why?"}],
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Let me think." and message.content[1].text == "The answer."
    assert fake.received[-1].effort == "high"


def test_anthropic_streamed_thinking_arrives_as_thinking_deltas(claude, fake):
    fake.enqueue(THINKING_REPLY)
    with claude.messages.stream(
        model="sonnet",
        max_tokens=256,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Why?"}],
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "thinking" in kinds  # the SDK's own thinking events from thinking_delta
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Let me think."


def test_anthropic_thinking_stays_hidden_unless_asked_and_can_be_turned_off(claude, fake):
    fake.enqueue(THINKING_REPLY)
    message = claude.messages.create(model="sonnet", max_tokens=256, messages=[{"role": "user", "content": "Why?"}])
    assert [block.type for block in message.content] == ["text"]
    claude.messages.create(
        model="sonnet", max_tokens=256, thinking={"type": "disabled"}, messages=[{"role": "user", "content": "x"}]
    )
    assert "thinking" not in fake.received[-1].body  # the model does not think at all


def test_responses_reasoning_summary_is_a_reasoning_item(client, fake):
    fake.enqueue(THINKING_REPLY)
    response = client.responses.create(model="sonnet", input="Why?", reasoning={"effort": "high", "summary": "auto"})
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "message"]
    assert response.output[0].summary[0].text == "Let me think."
    assert response.output_text == "The answer."
    assert fake.received[-1].effort == "high"


def test_responses_streamed_reasoning_and_no_reasoning_unless_asked(client, fake):
    fake.enqueue(THINKING_REPLY)
    with client.responses.stream(model="sonnet", input="Why?", reasoning={"summary": "auto"}) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.reasoning_summary_text.delta" in kinds
    assert [item.type for item in final.output] == ["reasoning", "message"]
    fake.enqueue(THINKING_REPLY)
    plain = client.responses.create(model="sonnet", input="Why?")
    assert [item.type for item in plain.output] == ["message"] and plain.output_text == "The answer."
