"""Workers (tap.inject): any warm CLI process serves any turn, and what the upstream receives
is what a fresh CLI resumed from the same history sends (the transcript path, UPSTREAM_TAP=off).

Each case sends the same request to two servers, one on workers and one on transcripts, both
in front of the same fake upstream with the real CLI, and compares the two upstream bodies
whole. They differ only where this file names it (``transcript_terms``):

- the environment note: the transcript server runs without the tap, which removes it;
- per-process ids in ``metadata`` (a device and session id every process has of its own);
- tool names: the transcript path offers the caller's tools through an MCP server, as
  ``mcp__client__NAME``; workers offer them under the caller's own ``NAME``;
- after tool results, the transcript path's CLI appends its resume prompt ("Continue from
  where you left off.") to the caller's message; workers send the caller's message as it is;
- for models whose notes are ``<system-reminder>`` blocks (older model ids), the transcript
  path writes them inside the caller's last tool result, with a newline added to the caller's
  text; workers put them after the tool results, the caller's result untouched.
"""

from __future__ import annotations

import base64
import copy
import json

import anthropic
import httpx
import openai
import pytest
from fake_upstream import Reply, ToolUse, structured_reply
from harness import BridgeServer
from test_tap_cli_e2e import WEATHER

from claude_cli_bridge.tap.rewrite import strip_environment_note

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PREFIX = "mcp__client__"
RESUME_PROMPT = "Continue from where you left off."
# A 1x1 PNG.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
    )
).decode()


@pytest.fixture(scope="module")
def pair(fake):
    """(workers, transcripts): two servers on the same fake upstream."""
    workers = BridgeServer(fake.base_url).start()
    transcripts = BridgeServer(fake.base_url, UPSTREAM_TAP="off").start()
    yield workers, transcripts
    for server in (workers, transcripts):
        server.stop()
        server.remove()


def transcript_terms(body: dict) -> dict:
    """A transcript-path body in the workers' terms (the differences the module names)."""
    body = copy.deepcopy(body)
    strip_environment_note(body)
    body.pop("metadata", None)
    for tool in body.get("tools") or []:
        tool["name"] = tool["name"].removeprefix(PREFIX)
    if isinstance(body.get("tool_choice"), dict) and "name" in body["tool_choice"]:
        body["tool_choice"]["name"] = body["tool_choice"]["name"].removeprefix(PREFIX)
    for message in body["messages"]:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if block.get("type") == "tool_use":
                block["name"] = block["name"].removeprefix(PREFIX)
        if not any(b.get("type") == "tool_result" for b in content):
            continue
        content = [b for b in content if not (b.get("type") == "text" and b.get("text") == RESUME_PROMPT)]
        # The CLI separates the caller's text from its resume prompt with a newline.
        content = [_without_newline(b) for b in content]
        last = [b for b in content if b.get("type") == "tool_result"][-1]
        inside = last["content"] if isinstance(last["content"], list) else []
        reminders = [b for b in inside if b.get("text", "").startswith("<system-reminder>")]
        if reminders:  # models with reminders: the CLI writes them inside the last result
            last["content"] = [_without_newline(b) for b in inside if b not in reminders]
            at = content.index(last) + 1
            content[at:at] = reminders
        message["content"] = content
    return body


def _without_newline(block: dict) -> dict:
    if block.get("type") == "text" and block.get("text", "").endswith("\n") and not block["text"].startswith("<"):
        return {**block, "text": block["text"][:-1]}
    return block


def worker_terms(body: dict) -> dict:
    body = copy.deepcopy(body)
    body.pop("metadata", None)
    return body


def reminders_unmarked(body: dict) -> dict:
    """Reminder blocks compared by their text alone: the CLI ends them with or without a newline
    and marks the last block, which differs with where they stand."""
    body = copy.deepcopy(body)
    for message in body["messages"]:
        content = message.get("content")
        for n, block in enumerate(content if isinstance(content, list) else []):
            if block.get("type") == "text" and block.get("text", "").startswith("<system-reminder>"):
                content[n] = {"type": "text", "text": block["text"].rstrip("\n")}
            elif "cache_control" in block:
                content[n] = {k: v for k, v in block.items() if k != "cache_control"}
    return body


def both(fake, pair, send) -> tuple[dict, dict]:
    """The upstream bodies of ``send(server)`` on the workers and the transcript server (each
    the turn's first request)."""
    workers, transcripts = pair
    bodies = []
    for server in (workers, transcripts):
        fake.received.clear()
        send(server)
        bodies.append(fake.model_calls()[0].body)
    return worker_terms(bodies[0]), transcript_terms(bodies[1])


def chat(messages, **extra):
    def send(server):
        client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
        client.chat.completions.create(model="sonnet", messages=messages, **extra)

    return send


CALLS = {
    "role": "assistant",
    "content": "Let me check both.",
    "tool_calls": [
        {"id": "toolu_a1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
        {"id": "toolu_b2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Bergen"}'}},
    ],
}
CHATS = {
    "new conversation": [{"role": "user", "content": "Hello there"}],
    "system and history": [
        {"role": "system", "content": "Keep answers short."},
        {"role": "user", "content": "What is the capital of Norway?"},
        {"role": "assistant", "content": "Oslo."},
        {"role": "user", "content": "And its population?"},
    ],
    "parallel calls and their results": [
        {"role": "user", "content": "Weather in Oslo and Bergen?"},
        CALLS,
        {"role": "tool", "tool_call_id": "toolu_a1", "content": "-3 C"},
        {"role": "tool", "tool_call_id": "toolu_b2", "content": "4 C, rain"},
    ],
    "results with the caller's text beside them": [
        {"role": "user", "content": "Weather in Oslo and Bergen?"},
        CALLS,
        {"role": "tool", "tool_call_id": "toolu_a1", "content": "-3 C"},
        {"role": "tool", "tool_call_id": "toolu_b2", "content": "4 C, rain"},
        {"role": "user", "content": "Answer in one word.  (ü ✓)"},
    ],
    "calls, results, then a new question": [
        {"role": "user", "content": "Weather in Oslo and Bergen?"},
        CALLS,
        {"role": "tool", "tool_call_id": "toolu_a1", "content": "-3 C"},
        {"role": "tool", "tool_call_id": "toolu_b2", "content": "4 C, rain"},
        {"role": "assistant", "content": "Cold in Oslo, wet in Bergen."},
        {"role": "user", "content": "Thanks. Which is warmer?"},
    ],
    "an image in history": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What colour is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
            ],
        },
        {"role": "assistant", "content": "Transparent."},
        {"role": "user", "content": "Are you sure?"},
    ],
}


@pytest.mark.parametrize("name", list(CHATS))
def test_a_worker_turn_sends_what_a_resumed_cli_sends(pair, fake, name):
    messages = CHATS[name]
    tools = [WEATHER] if any(m.get("tool_calls") for m in messages) else None
    extra = {"tools": tools} if tools else {}
    on_workers, on_transcripts = both(fake, pair, chat(messages, **extra))
    assert on_workers == on_transcripts


@pytest.mark.parametrize("name", ["new conversation", "system and history", "parallel calls and their results"])
def test_a_model_with_reminders_gets_what_a_resumed_cli_sends(pair, fake, name):
    """claude-sonnet-4-6: the CLI gives this model its notes as <system-reminder> blocks."""
    messages = CHATS[name]
    extra = {"tools": [WEATHER]} if any(m.get("tool_calls") for m in messages) else {}

    def send(server):
        client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
        client.chat.completions.create(model="claude-sonnet-4-6", messages=messages, **extra)

    on_workers, on_transcripts = both(fake, pair, send)
    if "tool_calls" not in json.dumps(messages):
        assert on_workers == on_transcripts
    assert reminders_unmarked(on_workers) == reminders_unmarked(on_transcripts)


def test_a_structured_output_turn_sends_what_a_resumed_cli_sends(pair, fake):
    fake.handler = lambda body: structured_reply(body, {"city": "Oslo"})
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    messages = [
        {"role": "user", "content": "A city?"},
        {"role": "assistant", "content": "Oslo"},
        {"role": "user", "content": "Again?"},
    ]
    response_format = {"type": "json_schema", "json_schema": {"name": "city", "schema": schema}}
    on_workers, on_transcripts = both(fake, pair, chat(messages, response_format=response_format))
    assert on_workers == on_transcripts


def test_each_surface_sends_the_same_body_on_workers_as_on_transcripts(pair, fake):
    """The Responses, Messages, Ollama and legacy completions surfaces, one turn with history each."""

    def responses(server):
        client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
        client.responses.create(
            model="sonnet",
            instructions="Be brief.",
            input=[
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "one"},
                {"role": "user", "content": "second"},
            ],
        )

    def messages(server):
        client = anthropic.Anthropic(base_url=server.base_url, api_key="x", max_retries=0)
        document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "A memo."}}
        client.messages.create(
            model="sonnet",
            max_tokens=1000,
            system="Be brief.",
            messages=[
                {"role": "user", "content": [document, {"type": "text", "text": "Summarise."}]},
                {"role": "assistant", "content": "A memo."},
                {"role": "user", "content": "Shorter?"},
            ],
        )

    def ollama(server):
        body = {
            "model": "sonnet",
            "stream": False,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "one"},
                {"role": "user", "content": "second"},
            ],
        }
        httpx.post(f"{server.ollama_url}/api/chat", json=body, timeout=60).raise_for_status()

    def completions(server):
        client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
        client.completions.create(model="sonnet", prompt="Say something.", max_tokens=50)

    for send in (responses, messages, ollama, completions):
        on_workers, on_transcripts = both(fake, pair, send)
        assert on_workers == on_transcripts, send.__name__


def test_an_agent_loop_is_warm_after_its_first_turn_and_the_tool_result_arrives_as_sent(pair, fake):
    workers, _ = pair
    client = openai.OpenAI(base_url=workers.openai_url, api_key="x", max_retries=0)
    messages: list[dict] = [{"role": "user", "content": "Weather in Oslo?"}]
    hows = []
    result_text = "-3 C\n  (exactly as the tool printed it: ü ✓)  "
    for step in range(4):
        fake.enqueue(
            Reply(chunks=["Checking."], tool_uses=[ToolUse("get_weather", {"city": "Oslo"}, id=f"toolu_{step}")])
        )
        raw = client.chat.completions.with_raw_response.create(model="sonnet", messages=messages, tools=[WEATHER])
        hows.append(raw.headers["x-bridge-process"])
        completion = raw.parse()
        assert completion.choices[0].finish_reason == "tool_calls"
        assert completion.choices[0].message.content == "Checking."  # not the tap's answer to the CLI
        messages.append(completion.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": f"toolu_{step}", "content": result_text})
    assert "cold" not in hows[1:], hows
    body = fake.model_calls()[-1].body
    results = [
        b
        for m in body["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert [r["content"] for r in results][-1] == [{"type": "text", "text": result_text}]
    assert "# Environment" not in json.dumps(body)
    assert [t["name"] for t in body["tools"]] == ["get_weather"]  # the caller's own name
    # The CLI's follow-up after each call ("No such tool available") was answered by the tap.
    assert not any("No such tool" in json.dumps(call.body) for call in fake.model_calls())
    assert workers.health()["upstream_tap"]["followups_answered"] >= 4


def test_interleaved_conversations_and_an_edited_message_are_served_warm(start_bridge, fake):
    server = start_bridge(MAX_PROCESSES="3")
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "warm up"}])
    chats = [[{"role": "user", "content": f"conversation {n}"}] for n in range(12)]
    hows = []
    for _ in range(2):
        for chat_messages in chats:
            raw = client.chat.completions.with_raw_response.create(model="sonnet", messages=chat_messages)
            hows.append(raw.headers["x-bridge-process"])
            chat_messages += [{"role": "assistant", "content": raw.parse().choices[0].message.content}]
            chat_messages += [{"role": "user", "content": "and then?"}]
    edited = [{"role": "user", "content": "conversation 0, edited"}, *chats[0][1:]]
    hows.append(
        client.chat.completions.with_raw_response.create(model="sonnet", messages=edited).headers["x-bridge-process"]
    )
    assert not any(how.startswith("cold") for how in hows), hows
    assert len(server.cli_pids()) <= 3
    assert fake.model_calls()[-1].plain_messages()[0] == ("user", "conversation 0, edited")


def test_health_and_doctor_name_the_path(pair):
    workers, transcripts = pair
    assert workers.health()["conversations"]["path"] == "workers"
    assert transcripts.health()["conversations"]["path"] == "transcripts"
    assert "UPSTREAM_TAP=off" in transcripts.health()["conversations"]["detail"]


def test_signed_thinking_before_a_call_returns_with_the_results_on_both_paths(pair, fake):
    """The model thinks, then calls a tool; the caller sends the result back (without the
    thinking, as OpenAI clients do); the bridge restores the signed thinking on both paths."""
    workers, transcripts = pair
    bodies = []
    for server in (workers, transcripts):
        fake.received.clear()
        fake.enqueue(
            Reply(
                chunks=["Checking."],
                thinking=["Need ", "the weather."],
                tool_uses=[ToolUse("get_weather", {"city": "Oslo"}, id="toolu_t1")],
            )
        )
        client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
        messages: list[dict] = [{"role": "user", "content": "Weather in Oslo?"}]
        first = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": "toolu_t1", "content": "-3 C"})
        client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
        bodies.append(fake.model_calls()[-1].body)
    on_workers, on_transcripts = worker_terms(bodies[0]), transcript_terms(bodies[1])
    thinking = [
        b
        for m in on_workers["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "thinking"
    ]
    assert thinking and thinking[0]["signature"] == "fake-signature-0123456789"
    assert on_workers == on_transcripts


def test_an_image_in_the_newest_message(pair, fake):
    """The transcript path hands the newest message to the CLI as its prompt; workers write it
    like any other message. The image reaches the model the same way on both."""
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}]
    on_workers, on_transcripts = both(fake, pair, chat(messages))
    assert on_workers == on_transcripts


async def test_a_worker_request_the_tap_cannot_make_faithful_is_refused_never_forwarded(fake, tmp_path):
    """The real CLI as a worker behind a tap: a turn whose request does not carry the
    assignment's placeholder, and a turn with no assignment at all, each fail with a 502
    naming why; nothing reaches the upstream."""
    from harness import find_test_cli

    from claude_cli_bridge.cli.launch import Launcher
    from claude_cli_bridge.cli.profile import Profile
    from claude_cli_bridge.core.messages import Message, TextBlock
    from claude_cli_bridge.errors import UpstreamError
    from claude_cli_bridge.tap import Tap, TapSettings
    from claude_cli_bridge.tap.inject import Assignment

    tap = Tap(TapSettings(upstream=fake.base_url), {})
    await tap.start()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ANTHROPIC_API_KEY": "sk-test"}
    launcher = Launcher(find_test_cli(), tmp_path / "state", env, tmp_path / "work", max_retries=0, tap=tap)
    launcher.workers = True
    launcher.prepare()
    process = await launcher(Profile(model="sonnet"), ())
    caller = ({"role": "user", "content": [{"type": "text", "text": "the caller's words"}]},)
    try:
        assert process.worker and process.tap_token is not None
        for assignment, why in (
            (Assignment("another turn's placeholder", caller), "placeholder prompt is not in the request"),
            (None, "outside any turn"),
        ):
            if assignment is not None:
                tap.assign(process.tap_token, assignment)
            with pytest.raises(UpstreamError) as raised:
                async for _ in process.turn(
                    Message("user", (TextBlock("Bridge turn x"),)), silence_timeout=30, turn_timeout=60
                ):
                    pass
            tap.release(process.tap_token)
            assert raised.value.status == 502 and why in str(raised.value)
            if not process.reusable:  # a failed turn spoils its process: the next check gets a fresh one
                await process.stop()
                process = await launcher(Profile(model="sonnet"), ())
        assert fake.model_calls() == [] and tap.counters.refused >= 2
    finally:
        await process.stop()
        await tap.close()
        launcher.cleanup()


def test_a_workers_earlier_turns_never_reach_another_conversation(start_bridge, fake):
    """One worker serves two conversations in turn: what it sent and got for the first (kept
    in the CLI's own memory) is nowhere in the second's request."""
    server = start_bridge(MAX_PROCESSES="1")
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    fake.enqueue(Reply(chunks=["ANSWER-OF-A"]))
    client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "SECRET-OF-A"}])
    [pid] = server.cli_pids()
    raw = client.chat.completions.with_raw_response.create(model="sonnet", messages=[{"role": "user", "content": "B"}])
    assert not raw.headers["x-bridge-process"].startswith("cold") and server.cli_pids() == {pid}
    body = json.dumps(fake.model_calls()[-1].body)
    assert "SECRET-OF-A" not in body and "ANSWER-OF-A" not in body
    assert fake.model_calls()[-1].plain_messages() == [("user", "B")]
