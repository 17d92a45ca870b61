"""The OpenAI surface end to end: the official openai SDK and raw HTTP against the real
server, driving the real CLI, talking to the fake upstream."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from fake_upstream import Reply, structured_reply

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(bridge):
    return openai.OpenAI(base_url=bridge.openai_url, api_key="unused", max_retries=0)


def test_non_streaming_answer_carries_text_usage_and_finish_reason(client, fake):
    fake.enqueue(Reply(chunks=["Hello", " world"], input_tokens=21, cache_read_input_tokens=5, output_tokens=7))
    response = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "Say hello"}])
    assert response.object == "chat.completion"
    assert response.choices[0].message.content == "Hello world"
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens == 26  # input plus cache tokens, as the upstream said
    assert response.usage.completion_tokens == 7
    assert response.usage.total_tokens == 33
    call = fake.received[-1]
    assert call.plain_messages() == [("user", "Say hello")]
    assert call.body["model"].startswith("claude-sonnet-")


def test_streaming_arrives_spread_over_time_with_role_finish_and_usage(client, fake):
    fake.enqueue(Reply(chunks=["one ", "two ", "three ", "four"], delay=0.25, output_tokens=4))
    started = time.monotonic()
    arrivals, chunks = [], []
    stream = client.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        arrivals.append(time.monotonic() - started)
        chunks.append(chunk)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    content_times = [t for t, c in zip(arrivals, chunks, strict=False) if c.choices and c.choices[0].delta.content]
    assert content_times[-1] - content_times[0] > 0.5, "content arrived in one burst"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert len({c.id for c in chunks}) == 1
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1


def test_stream_without_include_usage_has_no_usage_chunk(client, fake):
    chunks = list(
        client.chat.completions.create(model="haiku", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_raw_sse_frames_end_with_done(bridge, fake):
    with httpx.stream(
        "POST",
        f"{bridge.openai_url}/chat/completions",
        json={"model": "sonnet", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    data = [line for line in lines if line.startswith("data: ")]
    assert data[-1] == "data: [DONE]"
    assert not any(line.startswith("event:") for line in lines)
    json.loads(data[0][6:])


def test_system_and_developer_messages_become_the_system_prompt(client, fake):
    client.chat.completions.create(
        model="sonnet",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [{"type": "text", "text": "Bonjour"}]},
        ],
    )
    call = fake.received[-1]
    assert "You are terse.\n\nAnswer in French." in call.system_text
    assert call.plain_messages() == [("user", "Bonjour")]


def test_max_tokens_reaches_the_model_and_length_maps_to_finish_reason(client, fake):
    fake.enqueue(Reply(chunks=["cut"], stop_reason="max_tokens"))
    response = client.chat.completions.create(
        model="sonnet", max_completion_tokens=64, messages=[{"role": "user", "content": "long story"}]
    )
    assert fake.received[-1].body["max_tokens"] == 64
    assert response.choices[0].finish_reason == "length"


def test_a_cut_answer_is_not_continued_upstream(bridge, client, fake):
    """The CLI recovers from max_tokens by asking the upstream again by itself: the bridge
    interrupts it at once, so the cut costs no second upstream request."""
    fake.enqueue(Reply(chunks=["cut"], stop_reason="max_tokens", delay=0.05), Reply(chunks=["continued"], delay=0.5))
    response = client.chat.completions.create(
        model="sonnet", max_completion_tokens=64, messages=[{"role": "user", "content": "long story"}]
    )
    assert response.choices[0].message.content == "cut"
    bridge.wait_idle()
    time.sleep(0.5)  # a continuation would have reached the fake by now
    assert len(fake.received) == 1, [(c.finished, c.disconnected) for c in fake.received]


def test_stop_sequence_cuts_the_answer(client, fake):
    fake.enqueue(Reply(chunks=["alpha ", "beta", " END gamma", " delta"], delay=0.05))
    response = client.chat.completions.create(
        model="sonnet", stop=["END"], messages=[{"role": "user", "content": "go"}]
    )
    assert response.choices[0].message.content == "alpha beta "
    assert response.choices[0].finish_reason == "stop"


def test_legacy_model_ids_map_to_family_aliases(client, fake):
    client.chat.completions.create(model="claude-3-5-haiku-20241022", messages=[{"role": "user", "content": "hi"}])
    assert fake.received[-1].body["model"].startswith("claude-haiku-")


def test_full_model_ids_pass_through(client, fake):
    client.chat.completions.create(model="claude-opus-4-8", messages=[{"role": "user", "content": "hi"}])
    assert fake.received[-1].body["model"] == "claude-opus-4-8"


def test_models_list_aliases_and_full_ids(client):
    ids = {model.id for model in client.models.list()}
    assert {"opus", "sonnet", "haiku", "claude-sonnet-5-5"} <= ids
    assert all(model.owned_by for model in client.models.list())


@pytest.mark.parametrize(
    "status, error_class, expected_status",
    [
        (401, openai.AuthenticationError, 401),
        (429, openai.RateLimitError, 429),
        (529, openai.InternalServerError, 503),
        (500, openai.InternalServerError, 502),
    ],
)
def test_upstream_errors_become_proper_statuses(client, fake, status, error_class, expected_status):
    fake.handler = lambda body: Reply(status=status, error_type="error", error_message=f"upstream said {status}")
    started = time.monotonic()
    with pytest.raises(error_class) as caught:
        client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == expected_status
    assert time.monotonic() - started < 60
    body = caught.value.body
    assert body["message"]
    if expected_status == 401:
        assert "log in" in body["message"]
        assert caught.value.response.headers.get("x-should-retry") == "false"


def test_upstream_error_after_first_byte_is_an_in_band_error(client, fake):
    fake.handler = lambda body: Reply(chunks=["partial ", "answer ", "more"], delay=0.05, die_after=2)
    # A status error would raise here, at create(); an in-band one only while iterating.
    stream = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}], stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content if chunk.choices else None)
    assert not isinstance(caught.value, openai.APIStatusError)
    assert "partial " in received  # the error came after the first bytes of the answer
    assert caught.value.message


def test_chat_after_an_upstream_error_still_works(client, fake):
    fake.handler = lambda body: Reply(status=500, error_message="boom")  # every attempt fails
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "fails"}])
    fake.handler = None
    response = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "again"}])
    assert response.choices[0].message.content == "Hello from the fake."


def test_health_reports_the_cli(bridge):
    health = bridge.health()
    # The shared server has served every earlier test: it may be degraded for a while (a
    # backoff after processes died early), but then it says why.
    assert health["status"] == "ok" or health["degraded"], health
    assert health["cli_version"].count(".") == 2


def test_response_format_json_schema_gives_structured_output(client, fake):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    fake.handler = lambda body: structured_reply(body, {"answer": 42})
    response = client.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "6 times 7?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "result", "schema": schema}},
    )
    assert json.loads(response.choices[0].message.content) == {"answer": 42}
    tools = {tool["name"]: tool for tool in fake.received[-1].body["tools"]}
    assert tools["StructuredOutput"]["input_schema"] == schema


def test_a_cli_that_is_not_logged_in_is_reported_with_a_login_hint(start_bridge, fake):
    server = start_bridge(ANTHROPIC_API_KEY="", SPARE_PROFILES="0")
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    started = time.monotonic()
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 30
    assert "not logged in" in caught.value.message and "claude" in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert not fake.received
