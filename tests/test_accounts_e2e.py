"""Several accounts end to end: the real CLI logs in to the fake upstream with each account's
OAuth token (``Authorization: Bearer <token>``), so the fake tells accounts apart and refuses
one as a subscription 429 would. The bridge fails over to the next account before anything
reached the client, answers 429 with Retry-After when none allows, keeps each account's
credentials in its own processes, and lets no token reach a log, /health, /metrics or the
ledger."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from fake_upstream import Reply, unified_headers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

TOKEN_A = "sk-ant-oat01-SECRET-ACCOUNT-A-7f3e9c"
TOKEN_B = "sk-ant-oat01-SECRET-ACCOUNT-B-41d2aa"


def write_accounts(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


TWO_ACCOUNTS = """
[accounts.a]
oauth_token_env = "TOKEN_A"
[accounts.b]
oauth_token_env = "TOKEN_B"
"""


@pytest.fixture
def two_accounts(start_bridge, tmp_path):
    path = write_accounts(tmp_path / "accounts.toml", TWO_ACCOUNTS)
    return start_bridge(ACCOUNTS_FILE=path, TOKEN_A=TOKEN_A, TOKEN_B=TOKEN_B, ANTHROPIC_API_KEY=None)


def refused(reset: int) -> Reply:
    return Reply(
        status=429,
        error_type="rate_limit_error",
        error_message="usage limit reached",
        headers=unified_headers(
            "rejected", five_hour=(1.0, reset), claim="five_hour", window_status={"5h": "rejected"}
        ),
    )


def chat(server, messages, **headers) -> httpx.Response:
    return httpx.post(
        f"{server.openai_url}/chat/completions",
        json={"model": "sonnet", "messages": messages},
        headers=headers,
        timeout=90,
    )


def test_a_refused_account_fails_over_to_the_next_and_the_client_sees_no_error(two_accounts, fake):
    reset = int(time.time()) + 3 * 3600
    fake.enqueue_for(TOKEN_A, refused(reset))
    response = chat(two_accounts, [{"role": "user", "content": "hello"}])
    assert response.status_code == 200, response.text
    assert response.headers["x-bridge-account"] == "b"
    assert [call.token for call in fake.received] == [TOKEN_A, TOKEN_B]
    # A stays refused until its reset: the next new conversation goes to b at once.
    fake.received.clear()
    response = chat(two_accounts, [{"role": "user", "content": "again"}])
    assert response.status_code == 200 and response.headers["x-bridge-account"] == "b"
    assert [call.token for call in fake.received] == [TOKEN_B]
    accounts = two_accounts.health()["accounts"]
    assert accounts["a"]["state"] == "refused" and accounts["b"]["state"] == "ok"
    assert two_accounts.health()["failovers"] == 1
    assert "account a refused a turn" in two_accounts.log() and "failing over to b" in two_accounts.log()


def test_a_held_conversation_moves_with_its_whole_history_when_its_account_is_refused(two_accounts, fake):
    first = [{"role": "user", "content": "my name is Ada"}]
    response = chat(two_accounts, first)
    assert response.status_code == 200 and response.headers["x-bridge-account"] == "a"
    answer = response.json()["choices"][0]["message"]["content"]
    fake.received.clear()
    fake.enqueue_for(TOKEN_A, refused(int(time.time()) + 3600))
    follow_up = [*first, {"role": "assistant", "content": answer}, {"role": "user", "content": "what is my name?"}]
    response = chat(two_accounts, follow_up)
    assert response.status_code == 200 and response.headers["x-bridge-account"] == "b"
    on_a, on_b = fake.received
    assert (on_a.token, on_b.token) == (TOKEN_A, TOKEN_B)
    # b received the whole conversation, rebuilt from the history.
    assert on_b.plain_messages()[-3:] == [
        ("user", "my name is Ada"),
        ("assistant", answer),
        ("user", "what is my name?"),
    ]


def test_when_every_account_is_refused_each_api_gets_a_429_at_the_earliest_reset(two_accounts, fake):
    now = int(time.time())
    fake.enqueue_for(TOKEN_A, refused(now + 7200))
    fake.enqueue_for(TOKEN_B, refused(now + 3600))
    response = chat(two_accounts, [{"role": "user", "content": "hello"}])
    assert response.status_code == 429, response.text
    assert 3600 - 60 <= int(response.headers["retry-after"]) <= 3600
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(fake.received) == 2
    fake.received.clear()
    # Until a reset passes, no turn is spent: every API answers at once, in its own shape.
    anthropic = httpx.post(
        f"{two_accounts.base_url}/v1/messages",
        json={"model": "sonnet", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert anthropic.status_code == 429 and anthropic.json()["error"]["type"] == "rate_limit_error"
    ollama = httpx.post(
        f"{two_accounts.ollama_url}/api/chat",
        json={"model": "sonnet", "stream": False, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert ollama.status_code == 429 and "accounts" in ollama.json()["error"]
    for answer in (anthropic, ollama):
        assert 3600 - 60 <= int(answer.headers["retry-after"]) <= 3600
    assert fake.received == []


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def test_each_accounts_processes_hold_its_own_credentials_only(two_accounts, fake):
    fake.enqueue_for(TOKEN_A, refused(int(time.time()) + 3600))
    assert chat(two_accounts, [{"role": "user", "content": "hello"}]).status_code == 200
    two_accounts.wait_idle()
    environments = [_environ(pid) for pid in two_accounts.cli_pids()]
    assert environments
    seen = set()
    for env in environments:
        tokens = {value for value in env.values() if value in (TOKEN_A, TOKEN_B)}
        assert len(tokens) == 1, "a CLI process must hold exactly one account's token"
        assert "TOKEN_A" not in env and "TOKEN_B" not in env  # the file's variables are withheld
        assert "ANTHROPIC_API_KEY" not in env
        assert env["CLAUDE_CONFIG_DIR"].endswith(("cli-config-a", "cli-config-b"))
        seen |= tokens
    assert TOKEN_B in seen  # the process that answered


def test_no_token_appears_in_logs_health_metrics_or_the_ledger(start_bridge, tmp_path, fake):
    path = write_accounts(tmp_path / "accounts.toml", TWO_ACCOUNTS)
    server = start_bridge(
        ACCOUNTS_FILE=path, TOKEN_A=TOKEN_A, TOKEN_B=TOKEN_B, ANTHROPIC_API_KEY=None, LOG_LEVEL="debug"
    )
    fake.enqueue_for(TOKEN_A, refused(int(time.time()) + 3600))
    assert chat(server, [{"role": "user", "content": "hello"}]).status_code == 200
    texts = [
        server.log(),
        json.dumps(server.health()),
        httpx.get(f"{server.base_url}/metrics", timeout=10).text,
        httpx.get(f"{server.base_url}/dashboard/data", timeout=10).text,
    ]
    texts += [file.read_text() for file in server.data_dir.glob("*.json*")]
    for text in texts:
        assert TOKEN_A not in text and TOKEN_B not in text
    # Nor what the model saw.
    assert all(TOKEN_A not in json.dumps(call.body) and TOKEN_B not in json.dumps(call.body) for call in fake.received)


BAD_FILES = [
    ("", "no [accounts.NAME] entry"),
    ("[accounts.a]\n", "give exactly one of"),
    ('[accounts.a]\noauth_token_env = "TOKEN_A"\napi_key_env = "TOKEN_B"\n', "oauth_token_env and api_key_env"),
    ('[accounts.a]\noauth_token_env = "NOT_SET_ANYWHERE"\n', "NOT_SET_ANYWHERE"),
    ('[accounts.a]\nconfig_dir = "/nonexistent/claude"\n', "is not a directory"),
    ('[accounts.a]\noauth_token_env = "TOKEN_A"\ncolour = "blue"\n', "unknown field 'colour'"),
    (
        '[accounts.a]\noauth_token_env = "TOKEN_A"\n[keys.k]\nkey_sha256 = "' + "a" * 64 + '"\naccounts = ["zz"]\n',
        "'zz'",
    ),
    ("[accounts.a\n", "not valid TOML"),
]


@pytest.mark.parametrize("text, expected", BAD_FILES)
def test_a_bad_accounts_file_stops_the_server_with_one_line_naming_it(start_bridge, tmp_path, text, expected):
    path = write_accounts(tmp_path / "accounts.toml", text)
    server = start_bridge(wait=False, ACCOUNTS_FILE=path, TOKEN_A=TOKEN_A, TOKEN_B=TOKEN_B)
    assert server.proc.wait(60) == 2
    output = server.log_path.read_text()
    assert str(path) in output and expected in output, output
    assert TOKEN_A not in output


def test_a_missing_accounts_file_stops_the_server(start_bridge, tmp_path):
    server = start_bridge(wait=False, ACCOUNTS_FILE=str(tmp_path / "absent.toml"))
    assert server.proc.wait(60) == 2
    assert "no such file" in server.log_path.read_text()


def test_the_dashboard_shows_each_account_its_failovers_and_usage_by_account_and_key(start_bridge, tmp_path, fake):
    from browser import chromium, dump_dom, parse, screenshot

    chromium()  # skips without Chromium
    path = write_accounts(tmp_path / "accounts.toml", TWO_ACCOUNTS)
    server = start_bridge(ACCOUNTS_FILE=path, TOKEN_A=TOKEN_A, TOKEN_B=TOKEN_B, ANTHROPIC_API_KEY=None)
    now = int(time.time())
    fake.enqueue_for(TOKEN_A, refused(now + 7200))
    fake.enqueue_for(TOKEN_B, Reply(headers=unified_headers(five_hour=(0.25, now + 3600), claim="five_hour")))
    assert chat(server, [{"role": "user", "content": "hello"}]).status_code == 200
    server.wait_idle()
    url = f"http://127.0.0.1:{server.port}/dashboard"
    page = parse(dump_dom(url))
    screenshot(url, tmp_path / "dashboard.png")
    accounts = {row[0]: row for row in page.rows["accounts"][1:]}
    assert accounts["a"][2] == "refused" and accounts["a"][5] == "1"  # failed over once
    assert accounts["b"][2] == "ok" and accounts["b"][4] == "1" and "25%" in accounts["b"][7]
    assert accounts["a"][6] == accounts["b"][6] == "refused (not in use)"  # extra usage: the default
    assert "1 failover" in page.by_id["failovers"]
    by_account = {row[0]: row for row in page.rows["usage-account"][1:]}
    assert by_account["b"][1] == "1"
    assert [row[0] for row in page.rows["usage-key"][1:]] == ["(none)"]  # no keys: the anonymous caller
    assert TOKEN_A not in dump_dom(url)


def test_an_api_key_account_gets_its_windows_from_the_tap_and_fails_over_on_its_429(start_bridge, tmp_path, fake):
    # A Console key login: the CLI emits no rate-limit events, the upstream tap reads the
    # anthropic-ratelimit-unified-* headers of every response for the account instead.
    path = write_accounts(
        tmp_path / "accounts.toml",
        '[accounts.console]\napi_key_env = "CONSOLE_KEY"\n[accounts.b]\noauth_token_env = "TOKEN_B"\n',
    )
    server = start_bridge(
        ACCOUNTS_FILE=path, CONSOLE_KEY="sk-ant-api-SECRET-C", TOKEN_B=TOKEN_B, ANTHROPIC_API_KEY=None
    )
    now = int(time.time())
    fake.enqueue_for(
        "sk-ant-api-SECRET-C", Reply(headers=unified_headers(five_hour=(0.6, now + 3600), claim="five_hour"))
    )
    response = chat(server, [{"role": "user", "content": "hello"}])
    assert response.status_code == 200 and response.headers["x-bridge-account"] == "console"
    five = server.health()["accounts"]["console"]["subscription"]["windows"]["five_hour"]
    assert (five["percent"], five["resets_at"]) == (60.0, now + 3600)
    # With a key login the CLI retries a 429 once (CLAUDE_CODE_MAX_RETRIES=1): refuse both tries.
    fake.enqueue_for("sk-ant-api-SECRET-C", refused(now + 1800), refused(now + 1800))
    response = chat(server, [{"role": "user", "content": "again"}])
    assert response.status_code == 200 and response.headers["x-bridge-account"] == "b"
    assert server.health()["accounts"]["console"]["state"] == "refused"
    assert "sk-ant-api-SECRET-C" not in server.log()


def test_an_account_whose_login_fails_at_run_time_fails_over_and_shows_as_failing(two_accounts, fake):
    revoked = Reply(status=401, error_type="authentication_error", error_message="OAuth token has been revoked")
    fake.enqueue_for(TOKEN_A, *[revoked] * 3)  # however often the CLI tries it
    response = chat(two_accounts, [{"role": "user", "content": "hello"}])
    assert response.status_code == 200, response.text
    assert response.headers["x-bridge-account"] == "b"
    account = two_accounts.health()["accounts"]["a"]
    assert account["state"] == "failing" and "login" in account["failure"]
    assert TOKEN_A not in json.dumps(two_accounts.health())


@pytest.mark.parametrize(
    ("reply", "status", "code_or_words"),
    [
        (Reply(status=529, error_type="overloaded_error", error_message="Overloaded"), 503, "overloaded"),
        (
            Reply(
                status=400,
                error_type="invalid_request_error",
                error_message="prompt is too long: 210000 tokens > 200000 maximum",
            ),
            400,
            "prompt is too long",
        ),
    ],
)
def test_an_overloaded_upstream_or_a_context_too_long_never_marks_the_account(
    two_accounts, fake, reply, status, code_or_words
):
    """529 overloaded is the upstream's, a too-long context the caller's: each reaches the
    caller in its own terms, no failover, and the account keeps serving (issue 27, item 2)."""
    fake.handler = lambda body: reply
    try:
        response = chat(two_accounts, [{"role": "user", "content": "hi"}])
    finally:
        fake.handler = None
    assert response.status_code == status, response.text
    assert code_or_words in response.text.lower()
    assert {call.token for call in fake.received} == {TOKEN_A}  # no failover to b
    accounts = two_accounts.health()["accounts"]
    assert accounts["a"]["state"] == "ok" and two_accounts.health()["failovers"] == 0
    fake.received.clear()
    assert chat(two_accounts, [{"role": "user", "content": "again"}]).status_code == 200
    assert {call.token for call in fake.received} == {TOKEN_A}


def test_a_model_that_needs_usage_credits_on_one_account_is_served_by_the_next(two_accounts, fake):
    """credits_required refuses the model on that account, not the account: the turn fails over
    and the account stays unmarked, first for the next conversation too."""
    fake.enqueue_for(
        TOKEN_A,
        Reply(
            status=429,
            error_type="rate_limit_error",
            error_message="This model requires usage credits.",
            error_details={"error_code": "credits_required"},
        ),
    )
    response = chat(two_accounts, [{"role": "user", "content": "hello"}])
    assert response.status_code == 200, response.text
    assert response.headers["x-bridge-account"] == "b"
    assert [call.token for call in fake.received] == [TOKEN_A, TOKEN_B]
    health = two_accounts.health()
    assert health["accounts"]["a"]["state"] == "ok" and health["failovers"] == 1
    fake.received.clear()
    response = chat(two_accounts, [{"role": "user", "content": "a new one"}])
    assert response.status_code == 200 and response.headers["x-bridge-account"] == "a"
