"""The Ollama surface end to end: the official ollama SDK, raw NDJSON and an Open WebUI-style
sequence against the real server, driving the real CLI, talking to the fake upstream."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import datetime

import httpx
import ollama
import pytest
from fake_upstream import Reply, structured_reply
from ollama._types import ChatResponse, GenerateResponse, ListResponse, ProcessResponse, ShowResponse

pytestmark = pytest.mark.e2e

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
STATS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration")


@pytest.fixture
def client(bridge):
    return ollama.Client(host=bridge.ollama_url, timeout=60)


def ndjson(bridge, path: str, body: dict) -> tuple[httpx.Response, list[str]]:
    """POST and read the raw lines, blank ones included."""
    with httpx.stream("POST", f"{bridge.ollama_url}{path}", json=body, timeout=60) as response:
        lines = list(response.iter_lines())
    return response, lines


# -- models ----------------------------------------------------------------------------------
def test_list_names_every_model_with_a_tag(client):
    models = client.list().models
    names = {m.model for m in models}
    assert {"sonnet:latest", "haiku:latest", "opus:latest", "claude-sonnet-5-5:latest"} <= names
    claude = [m for m in models if m.model.startswith(("claude-", "sonnet:", "haiku:", "opus:"))]
    assert all(m.details.family == "claude" and m.size is not None for m in claude)


@pytest.mark.parametrize("name", ["sonnet", "sonnet:latest", "claude-haiku-4-5"])
def test_show_describes_context_and_capabilities(client, name):
    shown = client.show(name)
    architecture = shown.modelinfo["general.architecture"]
    assert shown.modelinfo[f"{architecture}.context_length"] == 200_000
    assert {"completion", "tools", "vision"} <= set(shown.capabilities)
    assert shown.modified_at is not None and shown.parameters and shown.template


def test_show_accepts_the_legacy_name_field(bridge):
    response = httpx.post(f"{bridge.ollama_url}/api/show", json={"name": "haiku:latest"}, timeout=10)
    assert response.status_code == 200
    ShowResponse.model_validate(response.json())


def test_ps_lists_running_models_with_expiry(client, bridge):
    client.chat(model="sonnet", messages=[{"role": "user", "content": "warm up"}])
    running = client.ps().models
    assert running, "a CLI process is alive, so a model is running"
    assert all(m.expires_at is not None and m.model.endswith(":latest") for m in running)


def test_pull_of_a_served_model_succeeds_and_others_are_404(client):
    statuses = [part.status for part in client.pull("sonnet", stream=True)]
    assert statuses[-1] == "success"
    assert client.pull("haiku:latest").status == "success"
    with pytest.raises(ollama.ResponseError) as caught:
        client.pull("llama3")
    assert caught.value.status_code == 404


# -- chat ------------------------------------------------------------------------------------
def test_chat_answers_with_counts_and_reaches_the_model_with_system_prompt(client, fake):
    fake.enqueue(Reply(chunks=["Hello", " world"], input_tokens=21, cache_read_input_tokens=5, output_tokens=7))
    response = client.chat(
        model="sonnet:latest",
        messages=[
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "Say hello"},
        ],
        options={"temperature": 0.2, "num_ctx": 8192},
        keep_alive="10m",
    )
    assert response.message.role == "assistant" and response.message.content == "Hello world"
    assert response.done is True and response.done_reason == "stop"
    assert (response.prompt_eval_count, response.eval_count) == (26, 7)
    assert all(isinstance(getattr(response, key), int) for key in STATS)
    assert response.total_duration >= response.eval_duration > 0
    call = fake.received[-1]
    assert call.plain_messages() == [("user", "Say hello")]
    assert "You are a pirate." in call.system_text
    assert call.body["model"].startswith("claude-sonnet-")


def test_chat_stream_arrives_spread_over_time(client, fake):
    fake.enqueue(Reply(chunks=["one ", "two ", "three ", "four"], delay=0.25, output_tokens=4))
    started = time.monotonic()
    parts, arrivals = [], []
    for part in client.chat(model="sonnet", messages=[{"role": "user", "content": "count"}], stream=True):
        parts.append(part)
        arrivals.append(time.monotonic() - started)
    assert "".join(p.message.content for p in parts) == "one two three four"
    content_times = [t for t, p in zip(arrivals, parts, strict=False) if p.message.content]
    assert content_times[-1] - content_times[0] > 0.5, "content arrived in one burst"
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].eval_count == 4 and parts[-1].done_reason == "stop"


def test_history_and_images_reach_the_model(client, fake):
    client.chat(
        model="sonnet",
        messages=[
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": "What is in this picture?", "images": [PNG]},
        ],
    )
    call = fake.received[-1]
    assert call.plain_messages() == [
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is in this picture?"),
    ]
    last_user = [m for m in call.messages if m["role"] == "user"][-1]  # the CLI appends a system-role note
    images = [b for b in last_user["content"] if isinstance(b, dict) and b.get("type") == "image"]
    assert images and images[0]["source"]["data"] == PNG and images[0]["source"]["media_type"] == "image/png"


def test_num_predict_and_stop_are_honoured(client, fake):
    fake.enqueue(Reply(chunks=["alpha ", "beta ", "STOP", " gamma"], delay=0.05))
    response = client.chat(
        model="sonnet",
        messages=[{"role": "user", "content": "go"}],
        options={"num_predict": 50, "stop": ["STOP"]},
    )
    assert response.message.content == "alpha beta "
    assert response.done_reason == "stop"
    assert fake.received[-1].body["max_tokens"] == 50


def test_max_tokens_stop_reason_is_length(client, fake):
    fake.enqueue(Reply(chunks=["cut"], stop_reason="max_tokens"))
    response = client.chat(model="sonnet", messages=[{"role": "user", "content": "go"}], options={"num_predict": 1})
    assert response.done_reason == "length"


def test_format_json_schema_offers_the_schema_to_the_model(client, fake):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    fake.handler = lambda body: structured_reply(body, {"city": "Oslo"})
    response = client.chat(model="haiku", messages=[{"role": "user", "content": "Capital of Norway?"}], format=schema)
    tools = {t["name"]: t for t in fake.received[-1].body.get("tools", [])}
    assert tools["StructuredOutput"]["input_schema"] == schema
    assert json.loads(response.message.content) == {"city": "Oslo"}


def test_empty_messages_is_a_load_request(bridge, fake):
    response = httpx.post(f"{bridge.ollama_url}/api/chat", json={"model": "sonnet", "messages": []}, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["done"] is True and body["done_reason"] == "load" and body["message"]["role"] == "assistant"
    assert not fake.received


# -- generate --------------------------------------------------------------------------------
def test_generate_with_system_prompt(client, fake):
    fake.enqueue(Reply(chunks=["Blue", " sky"]))
    response = client.generate(model="sonnet", prompt="Why is the sky blue?", system="Answer in two words.")
    assert response.response == "Blue sky" and response.done and response.done_reason == "stop"
    call = fake.received[-1]
    assert call.plain_messages() == [("user", "Why is the sky blue?")]
    assert "Answer in two words." in call.system_text


def test_generate_stream_and_suffix(client, fake):
    fake.enqueue(Reply(chunks=["    c = a + b"], delay=0.05))
    parts = list(client.generate(model="sonnet", prompt="def add(a, b):\n", suffix="\n    return c", stream=True))
    assert "".join(p.response for p in parts) == "    c = a + b" and parts[-1].done
    call = fake.received[-1]
    assert call.plain_messages() == [("user", "<prefix>def add(a, b):\n</prefix><suffix>\n    return c</suffix>")]
    assert "Fill in the middle" in call.system_text


def test_generate_empty_prompt_loads(client, fake):
    response = client.generate(model="sonnet", prompt="")
    assert response.done and response.done_reason == "load" and not fake.received


# -- raw NDJSON ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, body, key",
    [
        ("/api/chat", {"messages": [{"role": "user", "content": "hi"}]}, "message"),
        ("/api/generate", {"prompt": "hi"}, "response"),
    ],
)
def test_raw_ndjson_frames(bridge, fake, path, body, key):
    fake.enqueue(Reply(chunks=["a", "b", "c"], delay=0.02))
    response, lines = ndjson(bridge, path, {"model": "sonnet", **body})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert lines and all(line.strip() for line in lines), "blank lines break ollama-python"
    frames = [json.loads(line) for line in lines]
    for frame in frames:
        assert {"model", "created_at", "done", key} <= frame.keys()
        if key == "message":
            assert frame["message"]["role"] == "assistant"
            ChatResponse.model_validate(frame)
        else:
            GenerateResponse.model_validate(frame)
    final = frames[-1]
    assert final["done"] is True and [f["done"] for f in frames].count(True) == 1
    assert final["done_reason"] == "stop"
    assert all(type(final[stat]) is int for stat in STATS)
    assert final["total_duration"] >= final["prompt_eval_duration"] + final["eval_duration"]


def test_stream_false_gives_one_object(bridge):
    response = httpx.post(
        f"{bridge.ollama_url}/api/chat",
        json={"model": "sonnet", "stream": False, "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["message"]["content"] == "Hello from the fake." and body["done"] is True


# -- errors ----------------------------------------------------------------------------------


def test_upstream_error_before_the_first_frame_is_a_status(bridge, client, fake):
    fake.handler = lambda body: Reply(status=429, error_type="rate_limit_error", error_message="slow down")
    response, lines = ndjson(bridge, "/api/chat", {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 429 and "slow down" in json.loads(lines[0])["error"]
    with pytest.raises(ollama.ResponseError) as caught:
        next(iter(client.chat(model="sonnet", messages=[{"role": "user", "content": "hi"}], stream=True)))
    assert caught.value.status_code == 429


def test_upstream_error_after_the_first_frame_is_a_final_error_line(bridge, client, fake):
    fake.handler = lambda body: Reply(chunks=["partial ", "answer ", "more"], delay=0.05, die_after=2)
    with pytest.raises(ollama.ResponseError):
        for _ in client.chat(model="sonnet", messages=[{"role": "user", "content": "hi"}], stream=True):
            pass
    _response, lines = ndjson(bridge, "/api/chat", {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
    frames = [json.loads(line) for line in lines]
    assert frames[0]["message"]["content"] == "partial "
    assert list(frames[-1]) == ["error"] and not any(f.get("done") for f in frames)


def test_a_dropped_stream_drops_the_upstream_request(bridge, fake):
    fake.enqueue(Reply(chunks=["tick "] * 200, delay=0.05))
    with httpx.stream(
        "POST",
        f"{bridge.ollama_url}/api/chat",
        json={"model": "sonnet", "messages": [{"role": "user", "content": "long"}]},
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            if "tick" in line:
                break
    left_at = time.monotonic()
    deadline = left_at + 5
    while fake.received[-1].ended_at is None and time.monotonic() < deadline:
        time.sleep(0.02)
    call = fake.received[-1]
    assert call.disconnected and not call.finished
    assert call.ended_at - left_at < 1.5


def test_chat_after_an_upstream_error_still_works(client, fake):
    fake.handler = lambda body: Reply(status=500, error_message="boom")  # every attempt fails
    with pytest.raises(ollama.ResponseError):
        client.chat(model="sonnet", messages=[{"role": "user", "content": "fails"}])
    fake.handler = None
    assert client.chat(model="sonnet", messages=[{"role": "user", "content": "again"}]).message.content == (
        "Hello from the fake."
    )


# -- Open WebUI ------------------------------------------------------------------------------
TITLE_TASK = """### Task:
Generate a concise title summarizing the chat history.
### Guidelines:
- Keep it short: 2-4 words is best.
### Output:
JSON format: { "title": "your concise title here" }
### Chat History:
<chat_history>
USER: Why is the sky blue?
ASSISTANT: Rayleigh scattering.
</chat_history>"""


def test_open_webui_sequence(bridge, fake):
    """What Open WebUI does with OLLAMA_BASE_URL pointed here: version, tags, ps, a streamed
    chat, then a non-streamed title task, which goes to the task model."""
    http = httpx.Client(base_url=bridge.ollama_url, timeout=60)
    version = http.get("/api/version").json()["version"]
    assert tuple(map(int, re.sub(r"^v|-.*", "", version).split("."))) >= (0, 5, 0)

    models = http.get("/api/tags").json()["models"]
    ListResponse.model_validate({"models": models})
    by_model = {m["model"]: m for m in models}
    assert all(m["name"] == m["model"] for m in models)
    chosen = "sonnet:latest"
    assert chosen in by_model

    loaded = http.get("/api/ps").json()["models"]
    ProcessResponse.model_validate({"models": loaded})
    for model in loaded:
        datetime.fromisoformat(model["expires_at"])  # Open WebUI parses it so

    fake.enqueue(Reply(chunks=["Rayleigh ", "scattering."], delay=0.05))
    body = {
        "model": chosen,
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
        "stream": True,
        "options": {"temperature": 0.8},
        "keep_alive": "5m",
        "metadata": {"chat_id": "c1"},  # Open WebUI pops it, but other front ends do not
    }
    with http.stream("POST", "/api/chat", json=body) as response:
        frames = [json.loads(line) for line in response.iter_lines()]
    assert "".join(f["message"]["content"] for f in frames) == "Rayleigh scattering."
    assert frames[-1]["done"] and all(isinstance(frames[-1][key], int) for key in STATS)
    assert fake.received[-1].body["model"].startswith("claude-sonnet-")

    fake.enqueue(Reply(chunks=['{"title": "Blue Sky"}']))
    title = http.post(
        "/api/chat",
        json={
            "model": chosen,
            "messages": [{"role": "user", "content": TITLE_TASK}],
            "stream": False,
            "options": {"num_predict": 1000},
        },
    ).json()
    assert json.loads(title["message"]["content"]) == {"title": "Blue Sky"}
    assert title["model"] == chosen
    task_call = fake.received[-1]
    assert "haiku" in task_call.body["model"], "the title task goes to the task model"
    assert task_call.plain_messages() == [("user", TITLE_TASK)]


def test_an_invalid_format_schema_is_a_400_naming_the_problem(bridge):
    response = httpx.post(
        f"{bridge.ollama_url}/api/generate",
        json={"model": "sonnet", "prompt": "x", "stream": False, "format": {"type": "object", "1e100": {}}},
        timeout=30,
    )
    assert response.status_code == 400
    assert "JSON schema is not valid" in response.json()["error"]
    # The caller's own mistake pauses nobody: the next turn (another profile) is served.
    assert not bridge.health()["pool"]["backoff"]
    other = httpx.post(
        f"{bridge.ollama_url}/api/generate", json={"model": "sonnet", "prompt": "after", "stream": False}, timeout=60
    )
    assert other.status_code == 200, other.text
