"""Spares warmed at no quota, with the real CLI: each spare runs a warm-up turn the tap answers
itself; the upstream never sees it, and every request of a warmed process is what a fresh
process would have sent for the caller's conversation. A request that does not fit is refused
(a clear 502), never forwarded with the warm-up in it."""

from __future__ import annotations

import json

import anthropic
import httpx
import ollama
import openai
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

MARKER_WORDS = "Bridge warm-up"


def wait_for_warm_spares(server, n: int = 1) -> dict:
    status = server.wait_idle(timeout=60)
    tap = status["upstream_tap"]
    assert tap["warmups_answered"] >= n, tap
    return status


def comparable(body: dict) -> dict:
    """A request body without what differs between any two processes (the session id)."""
    return {key: value for key, value in body.items() if key != "metadata"}


def test_a_warmed_spares_requests_are_a_fresh_processs(start_bridge, fake):
    cold = start_bridge(WARM_SPARES="off")
    warm = start_bridge()
    wait_for_warm_spares(warm)
    bodies = []
    for server in (cold, warm):
        client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
        messages = [{"role": "user", "content": "the caller's first words"}]
        first = client.chat.completions.create(model="sonnet", messages=messages, user="c1")
        messages += [{"role": "assistant", "content": first.choices[0].message.content}]
        messages += [{"role": "user", "content": "and a follow-up"}]
        client.chat.completions.create(model="sonnet", messages=messages, user="c1")
        bodies.append([call.body for call in fake.model_calls()[-2:]])
        assert server.health()["pool"]
    (cold_first, cold_follow), (warm_first, warm_follow) = bodies
    assert comparable(warm_first) == comparable(cold_first)
    assert comparable(warm_follow) == comparable(cold_follow)
    tap = warm.health()["upstream_tap"]
    assert tap["warmups_removed"] + tap["turns_injected"] >= 2  # (workers: the tap writes each request whole)
    assert all(MARKER_WORDS not in json.dumps(call.body) for call in fake.model_calls())


def test_over_many_new_conversations_on_every_surface_the_upstream_never_sees_the_warm_up(start_bridge, fake):
    server = start_bridge(MAX_SPARES_PER_PROFILE="2", MAX_PROCESSES="6")
    wait_for_warm_spares(server)
    oa = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    an = anthropic.Anthropic(base_url=server.base_url, api_key="x", max_retries=0)
    ol = ollama.Client(host=server.ollama_url)
    sent: list[str] = []
    for n in range(25):
        for surface in ("openai", "anthropic", "ollama", "responses"):
            text = f"new conversation {n} on {surface}"
            sent.append(text)
            if surface == "openai":
                oa.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": text}])
            elif surface == "anthropic":
                an.messages.create(model="sonnet", max_tokens=50, messages=[{"role": "user", "content": text}])
            elif surface == "ollama":
                ol.chat(model="sonnet", messages=[{"role": "user", "content": text}])
            else:
                response = httpx.post(
                    f"{server.openai_url}/responses", json={"model": "sonnet", "input": text}, timeout=60
                )
                assert response.status_code == 200, response.text
    calls = fake.model_calls()
    assert len(calls) == len(sent)
    for call, text in zip(calls, sent, strict=True):
        assert MARKER_WORDS not in json.dumps(call.body)
        assert call.plain_messages() == [("user", text)]  # no assistant turn before the caller's first message
    tap = server.health()["upstream_tap"]
    assert tap["warmups_removed"] + tap["turns_injected"] >= 1 and tap["refused"] == 0


async def test_a_request_that_does_not_fit_the_warm_up_is_refused_with_a_clear_502(fake, tmp_path):
    """The real CLI, warmed through a tap; then the tap's expectation no longer matches what
    the CLI sends (as for a CLI that rewrote its history): the turn fails with a 502 naming the
    tap, and nothing of it reaches the upstream."""
    from harness import find_test_cli

    from claude_cli_bridge.cli.launch import Launcher
    from claude_cli_bridge.cli.profile import Profile
    from claude_cli_bridge.core.messages import Message, TextBlock
    from claude_cli_bridge.errors import UpstreamError
    from claude_cli_bridge.tap import Tap, TapSettings

    tap = Tap(TapSettings(upstream=fake.base_url), {})
    await tap.start()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ANTHROPIC_API_KEY": "sk-test"}
    launcher = Launcher(find_test_cli(), tmp_path / "state", env, tmp_path / "work", max_retries=0, tap=tap)
    launcher.prepare()
    process = await launcher(Profile(model="sonnet"), (), spare=True)
    try:
        assert tap.counters.warmups_answered == 1 and process.history == ()
        tap.warmup_text = "something else"  # what the tap expects no longer fits the request
        with pytest.raises(UpstreamError) as raised:
            async for _ in process.turn(Message("user", (TextBlock("hello"),)), silence_timeout=30, turn_timeout=60):
                pass
        assert raised.value.status == 502
        assert "upstream tap refused" in str(raised.value)
        assert fake.model_calls() == [] and tap.counters.refused >= 1
    finally:
        await process.stop()
        await tap.close()
        launcher.cleanup()
