"""Thinking, effort and documents on the Anthropic Messages and OpenAI Responses surfaces,
through the clients' own SDKs. Real CLI, fake upstream (which streams a thinking block)."""

from __future__ import annotations

import base64
import json

import anthropic
import openai
import pytest
from fake_upstream import Reply

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PDF_B64 = base64.b64encode(PDF).decode()
THINKING = Reply(thinking=["Let me ", "think."], chunks=["The ", "answer."])


@pytest.fixture
def claude(bridge):
    return anthropic.Anthropic(base_url=bridge.base_url, api_key="x", max_retries=0)


@pytest.fixture
def client(bridge):
    return openai.OpenAI(base_url=bridge.openai_url, api_key="x", max_retries=0)


def test_anthropic_thinking_is_shown_when_enabled_and_effort_reaches_the_upstream(claude, fake):
    fake.enqueue(THINKING)
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
    fake.enqueue(THINKING)
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
    fake.enqueue(THINKING)
    message = claude.messages.create(model="sonnet", max_tokens=256, messages=[{"role": "user", "content": "Why?"}])
    assert [block.type for block in message.content] == ["text"]
    claude.messages.create(
        model="sonnet", max_tokens=256, thinking={"type": "disabled"}, messages=[{"role": "user", "content": "x"}]
    )
    assert "thinking" not in fake.received[-1].body  # the model does not think at all


def test_anthropic_documents_reach_the_upstream_byte_for_byte(claude, fake):
    claude.messages.create(
        model="sonnet",
        max_tokens=64,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
                    },
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"}},
                    {"type": "text", "text": "Summarize both."},
                ],
            }
        ],
    )
    blocks = [b for m in fake.received[-1].messages if m["role"] == "user" for b in m["content"]]
    documents = [b["source"] for b in blocks if b.get("type") == "document"]
    assert {"type": "base64", "media_type": "application/pdf", "data": PDF_B64} in documents
    assert any(d.get("data") == "plain notes" for d in documents)
    with pytest.raises(anthropic.BadRequestError, match="document sources"):
        claude.messages.create(
            model="sonnet",
            max_tokens=64,
            messages=[
                {"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://x"}}]}
            ],
        )


def test_anthropic_forced_tool_choice_reaches_the_upstream(claude, fake):
    tool = {"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
    fake.handler = lambda body: Reply(chunks=["no call"])
    with pytest.raises(anthropic.APIStatusError):  # the fake ignores the choice: a 502, never a 200
        claude.messages.create(
            model="sonnet",
            max_tokens=64,
            tools=[tool],
            tool_choice={"type": "tool", "name": "lookup"},
            messages=[{"role": "user", "content": "x"}],
        )
    assert fake.received[-1].body["tool_choice"] == {"type": "tool", "name": "lookup"}


def test_responses_reasoning_summary_is_a_reasoning_item(client, fake):
    fake.enqueue(THINKING)
    response = client.responses.create(model="sonnet", input="Why?", reasoning={"effort": "high", "summary": "auto"})
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "message"]
    assert response.output[0].summary[0].text == "Let me think."
    assert response.output_text == "The answer."
    assert fake.received[-1].effort == "high"


def test_responses_streamed_reasoning_and_no_reasoning_unless_asked(client, fake):
    fake.enqueue(THINKING)
    with client.responses.stream(model="sonnet", input="Why?", reasoning={"summary": "auto"}) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.reasoning_summary_text.delta" in kinds
    assert [item.type for item in final.output] == ["reasoning", "message"]
    fake.enqueue(THINKING)
    plain = client.responses.create(model="sonnet", input="Why?")
    assert [item.type for item in plain.output] == ["message"] and plain.output_text == "The answer."


def test_responses_input_files_reach_the_upstream_as_documents(client, fake):
    client.responses.create(
        model="sonnet",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_file", "filename": "r.pdf", "file_data": f"data:application/pdf;base64,{PDF_B64}"},
                    {"type": "input_text", "text": "Summarize."},
                ],
            }
        ],
    )
    blocks = [b for m in fake.received[-1].messages if m["role"] == "user" for b in m["content"]]
    [document] = [b for b in blocks if b.get("type") == "document"]
    assert document["source"]["data"] == PDF_B64 and json.dumps(document).count("r.pdf") == 1
