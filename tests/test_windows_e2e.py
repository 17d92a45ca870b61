"""Subscription windows end to end: the fake upstream sends anthropic-ratelimit-unified-*
headers, the real CLI (OAuth login) turns them into rate_limit_event lines, and the bridge
shows them in /health; a refusal reaches the client as a 429 with Retry-After at the reset."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fake_upstream import Reply, unified_headers
from harness import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
def oauth_bridge(start_bridge):
    # rate_limit_event lines come only with a subscription login (docs/cli.md "Rate limits"); the fake
    # accepts any token. The CLI takes an empty ANTHROPIC_API_KEY as absent, but leave none.
    return start_bridge(CLAUDE_CODE_OAUTH_TOKEN="test-oauth-token", ANTHROPIC_API_KEY=None)


def chat(server, text: str = "hi") -> httpx.Response:
    return httpx.post(
        f"{server.openai_url}/chat/completions",
        json={"model": "sonnet", "messages": [{"role": "user", "content": text}]},
        timeout=60,
    )


def test_health_shows_the_windows_the_upstream_reported(oauth_bridge, fake):
    now = int(time.time())
    fake.default_reply = Reply(
        headers=unified_headers(five_hour=(0.42, now + 3600), seven_day=(0.17, now + 3 * 86400), claim="five_hour")
    )
    try:
        assert chat(oauth_bridge).status_code == 200
    finally:
        fake.default_reply = Reply()
    assert fake.received[-1].headers["authorization"] == "Bearer test-oauth-token"
    subscription = oauth_bridge.health()["subscription"]
    assert subscription["status"] == "allowed"
    five, seven = subscription["windows"]["five_hour"], subscription["windows"]["seven_day"]
    assert (five["percent"], five["resets_at"]) == (42.0, now + 3600)
    assert (seven["percent"], seven["resets_at"]) == (17.0, now + 3 * 86400)
    # Kept for a restarted server and for doctor.
    assert (oauth_bridge.data_dir / "windows.json").is_file()


def test_a_refused_window_is_a_429_with_retry_after_at_its_reset(oauth_bridge, fake):
    now = int(time.time())
    reset = now + 2 * 3600
    fake.enqueue(
        Reply(
            status=429,
            error_type="rate_limit_error",
            error_message="usage limit reached",
            headers=unified_headers(
                "rejected",
                five_hour=(1.0, reset),
                seven_day=(0.55, now + 4 * 86400),
                claim="five_hour",
                window_status={"5h": "rejected"},
            ),
        )
    )
    response = chat(oauth_bridge)
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert reset - now - 60 <= retry_after <= reset - now
    assert response.headers["x-should-retry"] == "false"  # hours away: an SDK retry would only be refused again
    error = response.json()["error"]
    assert error["code"] == "subscription_limit_reached"
    assert "5-hour" in error["message"] and "resets at" in error["message"]
    assert len(fake.received) == 1  # no retries upstream
    five = oauth_bridge.health()["subscription"]["windows"]["five_hour"]
    assert (five["status"], five["percent"]) == ("rejected", 100.0)

    # The Ollama API gets the same window and reset in its own error shape.
    fake.enqueue(
        Reply(
            status=429,
            error_type="rate_limit_error",
            headers=unified_headers("rejected", five_hour=(1.0, reset), window_status={"5h": "rejected"}),
        )
    )
    response = httpx.post(
        f"{oauth_bridge.ollama_url}/api/chat",
        json={"model": "sonnet", "stream": False, "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert response.status_code == 429 and "5-hour" in response.json()["error"]
    assert int(response.headers["retry-after"]) > 3600


def test_the_anthropic_surfaces_429_carries_the_upstreams_unified_headers(oauth_bridge, fake):
    """Claude Code as a client reads anthropic-ratelimit-unified-status/-reset/-representative-claim
    on a 429 to show its usage-limit message and reset time."""
    import anthropic

    reset = int(time.time()) + 3 * 3600
    fake.enqueue(
        Reply(
            status=429,
            error_type="rate_limit_error",
            error_message="usage limit reached",
            headers=unified_headers(
                "rejected", seven_day=(1.0, reset), claim="seven_day", window_status={"7d": "rejected"}
            ),
        )
    )
    client = anthropic.Anthropic(base_url=oauth_bridge.base_url, api_key="x", max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as raised:
        client.messages.create(model="sonnet", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    headers = raised.value.response.headers
    assert headers["anthropic-ratelimit-unified-status"] == "rejected"
    assert headers["anthropic-ratelimit-unified-reset"] == str(reset)
    assert headers["anthropic-ratelimit-unified-representative-claim"] == "seven_day"
    assert int(headers["retry-after"]) > 3600
    # The OpenAI surface keeps its own shape: no Anthropic headers there.
    fake.enqueue(
        Reply(
            status=429,
            error_type="rate_limit_error",
            headers=unified_headers(
                "rejected", seven_day=(1.0, reset), claim="seven_day", window_status={"7d": "rejected"}
            ),
        )
    )
    response = chat(oauth_bridge)
    assert response.status_code == 429 and "anthropic-ratelimit-unified-status" not in response.headers


def test_a_plain_throttle_answers_with_the_upstreams_own_retry_after(start_bridge, fake):
    """A 429 with retry-after and no used-up window (a short throttle): the client is told to
    retry after the upstream's own time, not a fixed 30 s (issue 27, item 2)."""
    server = start_bridge()
    throttle = Reply(status=429, error_type="rate_limit_error", error_message="slow down", retry_after="2")
    fake.handler = lambda body: throttle
    try:
        response = chat(server)
    finally:
        fake.handler = None
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == "2"
    assert len(fake.model_calls()) >= 1
    assert chat(server).status_code == 200  # the account was not marked refused past it


@pytest.mark.parametrize(
    "window",
    [
        ("seven_day_opus", "7d_opus", "opus", "7-day Opus"),
        # The weekly window of the "overage included" models: the CLI 2.1.332 scopes it to
        # those models (its default list is Fable's) and reads its headers as 7d_oi.
        ("seven_day_overage_included", "7d_oi", "claude-fable-5", "7-day Fable"),
    ],
)
def test_a_model_familys_weekly_limit_refuses_that_family_only(oauth_bridge, fake, window):
    """A weekly window of one model family used up (claim seven_day_opus, or the overage-included
    models' 7d_oi) refuses that family's turns on the account; Sonnet and Haiku turns keep being
    served there (issue 27, item 1)."""
    claim, short, family_model, label = window
    reset = int(time.time()) + 2 * 86400
    family_limit = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-representative-claim": claim,
        "anthropic-ratelimit-unified-reset": str(reset),
        f"anthropic-ratelimit-unified-{short}-status": "rejected",
        f"anthropic-ratelimit-unified-{short}-utilization": "1.0",
        f"anthropic-ratelimit-unified-{short}-reset": str(reset),
        "anthropic-ratelimit-unified-5h-utilization": "0.2",
        "anthropic-ratelimit-unified-5h-reset": str(int(time.time()) + 3600),
    }
    family = family_model.removeprefix("claude-").split("-")[0]

    def model(body):
        if family in body.get("model", ""):
            return Reply(status=429, error_type="rate_limit_error", error_message="usage limit", headers=family_limit)
        return Reply(chunks=["sonnet answers"])

    fake.handler = model
    try:

        def ask(name: str) -> httpx.Response:
            return httpx.post(
                f"{oauth_bridge.openai_url}/chat/completions",
                json={"model": name, "messages": [{"role": "user", "content": f"hi {name}"}]},
                timeout=60,
            )

        refused = ask(family_model)
        assert refused.status_code == 429 and label in refused.json()["error"]["message"], refused.text
        assert int(refused.headers["retry-after"]) > 86400
        served = ask("sonnet")
        assert served.status_code == 200 and served.json()["choices"][0]["message"]["content"] == "sonnet answers"
        calls = len(fake.model_calls())
        again = ask(family_model)  # refused before any upstream request: the window is known
        assert again.status_code == 429 and len(fake.model_calls()) == calls
        assert ask("haiku").status_code == 200
        assert oauth_bridge.health()["accounts"]["default"]["state"] == "ok"  # the account still serves
        windows = oauth_bridge.health()["subscription"]["windows"]
        assert windows[claim]["label"].startswith(label) and windows[claim]["status"] == "rejected"
    finally:
        fake.handler = None


def test_a_turn_billed_as_extra_usage_is_named_and_counted(start_bridge, fake):
    """The upstream's 400 "Third-party apps now draw from your extra usage" is no caller error
    and no silent success: a 429 naming extra usage, counted per account in /metrics."""
    server = start_bridge()
    words = "Third-party apps now draw from your extra usage, not your plan limits. Enable extra usage."
    refusal = Reply(status=400, error_type="invalid_request_error", error_message=words)
    fake.handler = lambda body: refusal  # (the CLI asks again without streaming: the same answer)
    try:
        response = chat(server)
    finally:
        fake.handler = None
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "extra_usage" and "extra usage" in error["message"]
    assert response.headers["x-should-retry"] == "false"
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    assert 'bridge_extra_usage_refusals_total{account="default"} 1.0' in metrics
    assert wait_for(lambda: any((server.data_dir).glob("errors-*.jsonl")), timeout=10)
    rows = [json.loads(line) for f in server.data_dir.glob("errors-*.jsonl") for line in f.read_text().splitlines()]
    assert [row["extra_usage"] for row in rows] == ["default"]  # the ledger names it too
    assert chat(server).status_code == 200  # the next turn is asked again (nothing is marked)


def test_an_account_that_allows_extra_usage_keeps_serving_past_its_used_up_window(start_bridge, fake, tmp_path):
    """Both accounts' 5-hour windows are used up with overage allowed (the upstream bills the
    next turns as extra usage): account a (extra_usage = "allow") keeps serving, account b
    (the default) is held back until the reset, a 429 naming the window."""
    from test_accounts_e2e import TOKEN_A, TOKEN_B
    from test_keys_e2e import ALICE, BOB, chat_as

    from claude_cli_bridge.accounts.keys import sha256_hex

    path = tmp_path / "accounts.toml"
    path.write_text(
        '[accounts.a]\noauth_token_env = "TOKEN_A"\nextra_usage = "allow"\n[accounts.b]\noauth_token_env = "TOKEN_B"\n'
        f'[keys.alice]\nkey_sha256 = "{sha256_hex(ALICE)}"\naccounts = ["a"]\n'
        f'[keys.bob]\nkey_sha256 = "{sha256_hex(BOB)}"\naccounts = ["b"]\n'
    )
    server = start_bridge(ACCOUNTS_FILE=str(path), TOKEN_A=TOKEN_A, TOKEN_B=TOKEN_B, ANTHROPIC_API_KEY=None)
    reset = int(time.time()) + 3600
    fake.default_reply = Reply(
        headers=unified_headers(
            "rejected", five_hour=(1.0, reset), overage=(0.1, reset + 86400), window_status={"overage": "allowed"}
        )
    )

    def turn(key: str) -> httpx.Response:
        return chat_as(server, key)

    try:
        assert turn(ALICE).status_code == 200 and turn(BOB).status_code == 200  # the readings arrive
        accounts = httpx.get(
            f"{server.base_url}/health", headers={"authorization": f"Bearer {ALICE}"}, timeout=10
        ).json()["accounts"]
        assert accounts["a"]["subscription"]["using_overage"] and accounts["b"]["subscription"]["using_overage"]
        assert turn(ALICE).status_code == 200  # extra usage allowed on a
        refused = turn(BOB)
    finally:
        fake.default_reply = Reply()
    assert refused.status_code == 429 and "5-hour" in refused.json()["error"]["message"]
    assert reset - time.time() - 60 < int(refused.headers["retry-after"]) <= reset - time.time() + 1


def test_a_model_that_needs_usage_credits_is_a_named_429_and_the_account_keeps_serving(start_bridge, fake):
    """The upstream's 429 with ``error_code: credits_required`` (the CLI passes it on as
    ``api_error_code``): no retry can clear it, so the caller gets a 429 naming it, told not to
    retry, in each API's shape; the account is not marked and serves the next turn."""
    server = start_bridge()
    refusal = Reply(
        status=429,
        error_type="rate_limit_error",
        error_message="This model requires usage credits.",
        error_details={"error_code": "credits_required"},
    )
    fake.handler = lambda body: refusal
    try:
        response = chat(server)
        messages = httpx.post(
            f"{server.base_url}/v1/messages",
            json={"model": "sonnet", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]},
            timeout=60,
        )
    finally:
        fake.handler = None
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "credits_required" and "usage credits" in error["message"]
    assert response.headers["x-should-retry"] == "false" and "retry-after" not in response.headers
    assert messages.status_code == 429 and messages.json()["error"]["type"] == "rate_limit_error", messages.text
    assert len(fake.model_calls()) == 2  # one upstream request per turn: the CLI does not retry it either
    assert server.health()["accounts"]["default"]["state"] == "ok"
    assert chat(server).status_code == 200
