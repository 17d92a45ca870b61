"""Legacy completions end to end: the openai SDK's completions.create (streaming and not) and
litellm.text_completion, against the real server, the real CLI and the fake upstream."""

from __future__ import annotations

import openai
import pytest
from fake_upstream import Reply

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(bridge):
    return openai.OpenAI(base_url=bridge.openai_url, api_key="unused", max_retries=0)


def test_completion_answers_the_prompt_with_usage(client, fake):
    fake.enqueue(Reply(chunks=["Paris", "."], input_tokens=9, output_tokens=2))
    completion = client.completions.create(model="sonnet", prompt="The capital of France is", max_tokens=20)
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "Paris." and completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (9, 2)
    call = fake.received[-1]
    assert call.plain_messages() == [("user", "The capital of France is")]
    assert call.body["max_tokens"] == 20


def test_streamed_completion_arrives_in_chunks(client, fake):
    fake.enqueue(Reply(chunks=["one ", "two ", "three"], delay=0.1))
    chunks = list(
        client.completions.create(model="sonnet", prompt="Count", stream=True, stream_options={"include_usage": True})
    )
    texts = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
    assert "".join(texts) == "one two three" and len(texts) >= 2
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3


def test_suffix_asks_for_the_middle(client, fake):
    fake.enqueue(Reply(chunks=["a + b"]))
    completion = client.completions.create(model="sonnet", prompt="def add(a, b):\n    return ", suffix="\n")
    assert completion.choices[0].text == "a + b"
    call = fake.received[-1]
    assert call.plain_messages() == [("user", "<prefix>def add(a, b):\n    return </prefix><suffix>\n</suffix>")]
    assert "Fill in the middle" in call.system_text


def test_litellm_text_completion(bridge, fake, monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import
    litellm = pytest.importorskip("litellm")
    fake.enqueue(Reply(chunks=["Hello", " there"]))
    response = litellm.text_completion(
        model="text-completion-openai/sonnet", prompt="Say hello", api_base=bridge.openai_url, api_key="unused"
    )
    assert response.choices[0].text == "Hello there"
    assert fake.received[-1].plain_messages() == [("user", "Say hello")]
