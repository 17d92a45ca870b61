"""Several bridges behind a router, all real and on loopback: two bridges (the real CLI,
each with its own fake upstream account on an OAuth login), LiteLLM's proxy with
deploy/litellm.yaml as shipped, the openai SDK as the client; and nginx with
deploy/nginx.conf, as shipped (a hash of the conversation) and with plain round robin. Plus
draining on SIGTERM against one real bridge.

Which bridge served a turn: LiteLLM's ``x-litellm-model-id`` (the deployment ids in
deploy/litellm.yaml); whether a follow-up was warm: the bridge's ``x-bridge-process`` (not
``cold``), which LiteLLM passes on as ``llm_provider-x-bridge-process``. On workers every
turn is warm on whichever bridge gets it: affinity only keeps a conversation's prompt cache
on one account.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid

import httpx
import openai
import pytest
from fake_upstream import Received, Reply, unified_headers
from harness import wait_for
from routing_cluster import (
    BRIDGE_KEY,
    MASTER_KEY,
    litellm_proxy_path,
    nginx_path,
    start_bridges,
    start_litellm,
    start_nginx,
    stop_bridges,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
BRIDGE_OF = {"bridge-a-sonnet": "a", "bridge-b-sonnet": "b"}


@pytest.fixture(scope="module")
def bridges():
    started = start_bridges()
    yield {bridge.name: bridge for bridge in started}
    stop_bridges(started)


@pytest.fixture(scope="module")
def litellm(bridges):
    binary = litellm_proxy_path()
    if binary is None:
        pytest.skip(
            "no LiteLLM proxy: scripts/test installs litellm[proxy]==1.100.5 into .cache/litellm-proxy "
            "(or set LITELLM_PROXY_PATH)"
        )
    router = start_litellm(binary, [bridges["a"], bridges["b"]])
    yield router
    router.stop()


@pytest.fixture(autouse=True)
def _answers(request):
    """Every upstream answer names its conversation's newest prompt, so a wrong history shows."""
    if "bridges" not in request.fixturenames:
        yield
        return
    bridges = request.getfixturevalue("bridges")
    for bridge in bridges.values():
        bridge.fake.reset()
        bridge.fake.handler = echo
    yield


def warm(how: str) -> bool:
    """A turn served by a process that was already running (X-Bridge-Process)."""
    return bool(how) and not how.startswith("cold")


def echo(body):
    prompt = Received(body=body, headers={}, started=0.0).plain_messages()[-1][1]
    return Reply(chunks=["re: ", prompt.strip()[:80]])


class Conversation:
    """One client conversation through the proxy, keeping its history and what served each turn."""

    def __init__(self, client: openai.OpenAI, name: str):
        self.client, self.name = client, name
        self.session = f"{name}-{uuid.uuid4().hex[:8]}"
        self.messages: list[dict] = []
        self.served: list[tuple[str, str]] = []  # (bridge, how)

    def turn(self, n: int) -> str:
        prompt = f"{self.name} turn {n}"
        self.messages.append({"role": "user", "content": prompt})
        raw = self.client.chat.completions.with_raw_response.create(
            model="sonnet", messages=self.messages, extra_headers={"x-litellm-session-id": self.session}
        )
        answer = raw.parse().choices[0].message.content
        assert answer == f"re: {prompt}", (self.name, n, answer)
        self.messages.append({"role": "assistant", "content": answer})
        self.served.append(
            (BRIDGE_OF[raw.headers["x-litellm-model-id"]], raw.headers.get("llm_provider-x-bridge-process", ""))
        )
        return answer


def proxy_client(router) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.url, api_key=MASTER_KEY, max_retries=0, timeout=120)


def test_every_turn_of_a_conversation_reaches_its_bridge_and_follow_ups_are_warm(litellm, bridges):
    client = proxy_client(litellm)
    conversations = [Conversation(client, f"conv{n}") for n in range(8)]
    for n in range(3):  # interleaved, as real users are
        for conversation in conversations:
            conversation.turn(n)
    for conversation in conversations:
        bridges_used = {bridge for bridge, _ in conversation.served}
        assert len(bridges_used) == 1, conversation.served
        assert all(warm(how) for _, how in conversation.served[1:]), conversation.served
    # Each bridge's upstream saw only its own conversations.
    for name, bridge in bridges.items():
        mine = {c.name for c in conversations if c.served[0][0] == name}
        seen = {call.plain_messages()[-1][1].split()[0] for call in bridge.fake.model_calls()}
        assert seen == mine


def test_without_affinity_every_follow_up_is_warm_on_whichever_bridge_gets_it(litellm, bridges):
    """LiteLLM with no session id (its simple shuffle): turns land on either bridge; workers
    serve each warm with the whole history."""
    client = proxy_client(litellm)
    for bridge in bridges.values():
        bridge.server.wait_idle(timeout=60)  # both bridges' workers are up
    conversations = [Conversation(client, f"free{n}") for n in range(4)]
    for conversation in conversations:
        conversation.session = ""  # no x-litellm-session-id: no affinity
    for n in range(4):
        for conversation in conversations:
            messages = [*conversation.messages, {"role": "user", "content": f"{conversation.name} turn {n}"}]
            raw = client.chat.completions.with_raw_response.create(model="sonnet", messages=messages)
            answer = raw.parse().choices[0].message.content
            assert answer == f"re: {conversation.name} turn {n}"
            conversation.messages = [*messages, {"role": "assistant", "content": answer}]
            conversation.served.append(
                (BRIDGE_OF[raw.headers["x-litellm-model-id"]], raw.headers.get("llm_provider-x-bridge-process", ""))
            )
    hows = [how for c in conversations for _, how in c.served[1:]]
    assert all(warm(how) for how in hows), hows
    assert {bridge for c in conversations for bridge, _ in c.served} == {"a", "b"}


def test_a_refused_account_moves_its_conversations_and_new_ones_to_the_other_bridge(litellm, bridges):
    client = proxy_client(litellm)
    on_a: list[Conversation] = []
    for n in range(24):  # new conversations spread at random: find two that LiteLLM put on A
        conversation = Conversation(client, f"refused{n}")
        conversation.turn(0)
        if conversation.served[0][0] == "a":
            on_a.append(conversation)
        if len(on_a) == 2:
            break
    assert len(on_a) == 2
    reset = int(time.time()) + 15  # A's subscription window resets in 15 s: LiteLLM cools A that long
    refusal = Reply(
        status=429,
        error_type="rate_limit_error",
        error_message="usage limit reached",
        headers=unified_headers("rejected", five_hour=(1.0, reset), window_status={"5h": "rejected"}),
    )
    bridges["a"].fake.handler = lambda body: refusal
    refused_before = len(bridges["a"].fake.model_calls())

    for conversation in on_a:
        conversation.turn(1)  # no error reaches the client
        assert conversation.served[-1][0] == "b"
        history = bridges["b"].fake.model_calls()[-1].plain_messages()
        assert [text for _, text in history] == [m["content"] for m in conversation.messages[:-1]]  # the whole history
    ready = httpx.get(f"{bridges['a'].server.base_url}/ready", timeout=5)  # what a health check would see
    assert ready.status_code == 503 and ready.json()["reasons"] == ["account_refused"]
    fresh = [Conversation(client, f"fresh{n}") for n in range(3)]
    for conversation in fresh:
        conversation.turn(0)
        assert conversation.served[0][0] == "b"
    assert len(bridges["a"].fake.model_calls()) - refused_before == 1  # one refusal, then A was cooled down
    # While A cools down, the moved conversations stay warm on B.
    on_a[0].turn(2)
    assert on_a[0].served[-1][0] == "b" and warm(on_a[0].served[-1][1])
    bridges["a"].fake.handler = echo
    time.sleep(max(0.0, reset - time.time()) + 2)  # A's cooldown ends: later tests get both bridges


def test_sigterm_drains_a_bridge_under_traffic_without_losing_or_repeating_a_request(litellm, bridges):
    client = proxy_client(litellm)
    on_b = []
    for n in range(24):
        conversation = Conversation(client, f"drain{n}")
        conversation.turn(0)
        if conversation.served[0][0] == "b":
            on_b.append(conversation)
        if len(on_b) == 3:
            break
    assert len(on_b) == 3
    slow = bridges["b"].fake

    def slow_echo(body):
        return Reply(chunks=echo(body).chunks, delay=2.0)  # turns that are still running at SIGTERM

    slow.handler = slow_echo
    results: dict[str, str | BaseException] = {}

    def run(conversation: Conversation, n: int) -> None:
        try:
            results[f"{conversation.name}/{n}"] = conversation.turn(n)
        except BaseException as exc:  # reported by the assertion below
            results[f"{conversation.name}/{n}"] = exc

    in_flight = [threading.Thread(target=run, args=(c, 1)) for c in on_b[:2]]
    for thread in in_flight:
        thread.start()
    assert wait_for(lambda: sum(1 for call in slow.model_calls() if "turn 1" in str(call.body)) == 2, timeout=30)
    server = bridges["b"].server
    server.proc.send_signal(signal.SIGTERM)
    health = httpx.get(f"{server.base_url}/health", timeout=5)
    assert health.status_code == 503 and health.json()["status"] == "draining"
    # New requests while B drains: its third conversation's next turn and new conversations.
    later = [threading.Thread(target=run, args=(on_b[2], 1))]
    later += [threading.Thread(target=run, args=(Conversation(client, f"after{n}"), 0)) for n in range(3)]
    for thread in later:
        thread.start()
    for thread in in_flight + later:
        thread.join(180)
    assert all(isinstance(answer, str) for answer in results.values()), results
    assert len(results) == 6
    for conversation in on_b[:2]:
        assert conversation.served[-1][0] == "b"  # finished where it ran
    assert on_b[2].served[-1][0] == "a"  # moved, and answered with its history
    assert server.proc.wait(60) is not None  # B exits once its turns are done
    # Each request reached a model exactly once: no loss, no repeat.
    prompts = [call.plain_messages()[-1][1] for b in bridges.values() for call in b.fake.model_calls()]
    for key in results:
        name, n = key.split("/")
        assert prompts.count(f"{name} turn {n}") == 1, (key, prompts)


@pytest.fixture(scope="module")
def nginx_cluster():
    binary = nginx_path()
    if binary is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx; .ci/run installs it)")
    started = start_bridges()
    bridges = {bridge.name: bridge for bridge in started}
    try:
        router = start_nginx(binary, started)
    except BaseException:
        stop_bridges(started)
        raise
    yield router, bridges
    router.stop()
    stop_bridges(started)


def test_nginx_hashes_each_conversation_to_one_bridge_and_its_follow_ups_are_warm(nginx_cluster):
    router, bridges = nginx_cluster
    for bridge in bridges.values():
        bridge.fake.handler = echo
    client = openai.OpenAI(base_url=router.url, api_key=BRIDGE_KEY, max_retries=0, timeout=120)
    served: dict[str, list[tuple[str, str]]] = {}
    histories: dict[str, list[dict]] = {f"nginx{n}": [] for n in range(8)}
    for n in range(3):
        for name, messages in histories.items():
            messages.append({"role": "user", "content": f"{name} turn {n}"})
            raw = client.chat.completions.with_raw_response.create(
                model="sonnet", messages=messages, extra_headers={"x-conversation-id": name}
            )
            answer = raw.parse().choices[0].message.content
            assert answer == f"re: {name} turn {n}"
            messages.append({"role": "assistant", "content": answer})
            assert raw.headers["x-conversation-id"] == name
            served.setdefault(name, []).append(raw.headers["x-bridge-process"])
    for name, hows in served.items():
        assert all(warm(how) for how in hows[1:]), (name, hows)
        holders = [b for b, bridge in bridges.items() if any(name in str(c.body) for c in bridge.fake.model_calls())]
        assert len(holders) == 1, (name, holders)


@pytest.fixture(scope="module")
def round_robin_cluster():
    binary = nginx_path()
    if binary is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx; .ci/run installs it)")
    started = start_bridges()
    try:
        router = start_nginx(binary, started, affinity=False)
    except BaseException:
        stop_bridges(started)
        raise
    yield router, {bridge.name: bridge for bridge in started}
    router.stop()
    stop_bridges(started)


def test_nginx_round_robin_alternates_bridges_and_every_follow_up_is_warm(round_robin_cluster):
    router, bridges = round_robin_cluster
    for bridge in bridges.values():
        bridge.fake.handler = echo
        bridge.server.wait_idle(timeout=60)  # its worker is up (a cold first turn there is no routing matter)
    client = openai.OpenAI(base_url=router.url, api_key=BRIDGE_KEY, max_retries=0, timeout=120)
    messages: list[dict] = []
    hows = []
    for n in range(6):
        messages.append({"role": "user", "content": f"rr turn {n}"})
        raw = client.chat.completions.with_raw_response.create(model="sonnet", messages=messages)
        answer = raw.parse().choices[0].message.content
        assert answer == f"re: rr turn {n}"
        messages.append({"role": "assistant", "content": answer})
        hows.append(raw.headers["x-bridge-process"])
    assert all(warm(how) for how in hows[1:]), hows
    served = {
        name: [c for c in bridge.fake.model_calls() if "rr turn" in str(c.body)] for name, bridge in bridges.items()
    }
    assert all(len(calls) == 3 for calls in served.values()), {n: len(c) for n, c in served.items()}
    # Each bridge's request carried the whole history up to its turn.
    last = max((c for calls in served.values() for c in calls), key=lambda c: c.started)
    assert [text for _, text in last.plain_messages()][-3:] == ["rr turn 4", "re: rr turn 4", "rr turn 5"]


def test_a_draining_bridge_answers_503_while_its_turn_finishes_then_exits(start_bridge, fake):
    server = start_bridge(SPARE_PROFILES="0", DRAIN_RETRY_AFTER_SECONDS="17")
    fake.enqueue(Reply(chunks=["slow "] * 10, delay=0.3))
    answers: dict[str, httpx.Response] = {}

    def long_turn() -> None:
        answers["long"] = httpx.post(
            f"{server.openai_url}/chat/completions",
            json={"model": "sonnet", "messages": [{"role": "user", "content": "long"}]},
            timeout=60,
        )

    thread = threading.Thread(target=long_turn)
    thread.start()
    assert wait_for(lambda: len(fake.received) >= 1, timeout=30)
    server.proc.send_signal(signal.SIGTERM)
    health = httpx.get(f"{server.base_url}/health", timeout=5)
    refused = httpx.post(
        f"{server.openai_url}/chat/completions",
        json={"model": "sonnet", "messages": [{"role": "user", "content": "new"}]},
        timeout=10,
    )
    ready = httpx.get(f"{server.base_url}/ready", timeout=5)
    thread.join(60)
    assert health.status_code == 503 and health.json()["status"] == "draining"
    assert refused.status_code == 503 and refused.headers["retry-after"] == "17"
    assert refused.json()["error"]["code"] == "draining"
    assert ready.status_code == 503 and ready.json()["reasons"] == ["draining"]
    assert answers["long"].status_code == 200
    assert answers["long"].json()["choices"][0]["message"]["content"] == "slow " * 10
    assert len(fake.received) == 1  # the refused turn never reached the model
    assert server.proc.wait(30) is not None
    assert not server.cli_pids()
