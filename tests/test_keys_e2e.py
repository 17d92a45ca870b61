"""Client keys end to end with the real CLI and the clients' own SDKs: each key reaches the
upstream only with its own accounts' token, a key's limits refuse through the openai,
anthropic and ollama SDKs, and two keys sending the same history never share a process."""

from __future__ import annotations

import contextlib

import anthropic
import httpx
import ollama
import openai
import pytest
from harness import wait_for
from test_accounts_e2e import TOKEN_A, TOKEN_B

from claude_cli_bridge.accounts.keys import sha256_hex

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ALICE, BOB, CI = "ccb-e2e-alice-0f3a", "ccb-e2e-bob-77c1", "ccb-e2e-ci-9d20"
DANA = "ccb-e2e-dana-51be"

FILE = f"""
[accounts.a]
oauth_token_env = "TOKEN_A"
[accounts.b]
oauth_token_env = "TOKEN_B"
[keys.alice]
key_sha256 = "{sha256_hex(ALICE)}"
accounts = ["a"]
[keys.bob]
key_sha256 = "{sha256_hex(BOB)}"
accounts = ["b"]
[keys.ci]
key_sha256 = "{sha256_hex(CI)}"
accounts = ["b"]
models = ["haiku"]
requests_per_minute = 2
"""


@pytest.fixture
def keyed(start_bridge, tmp_path):
    path = tmp_path / "accounts.toml"
    path.write_text(FILE)
    return start_bridge(ACCOUNTS_FILE=str(path), TOKEN_A=TOKEN_A, TOKEN_B=TOKEN_B, ANTHROPIC_API_KEY=None)


def test_each_key_reaches_the_upstream_with_its_own_accounts_token_only(keyed, fake):
    for key, token in ((ALICE, TOKEN_A), (BOB, TOKEN_B)):
        fake.received.clear()
        client = openai.OpenAI(base_url=keyed.openai_url, api_key=key, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="sonnet", messages=[{"role": "user", "content": "hello"}]
        )
        assert raw.parse().choices[0].message.content == "Hello from the fake."
        assert raw.headers["x-bridge-account"] == ("a" if token == TOKEN_A else "b")
        assert {call.token for call in fake.received} == {token}
    wait_for(lambda: "key=bob" in keyed.log())  # the request's log line follows its last byte
    log = keyed.log()
    assert "key=alice" in log and "key=bob" in log
    assert ALICE not in log and BOB not in log and sha256_hex(ALICE) not in log


def test_the_same_history_from_two_keys_gets_a_process_of_its_own(keyed, fake):
    first = [{"role": "user", "content": "remember the number 7"}]
    alice = openai.OpenAI(base_url=keyed.openai_url, api_key=ALICE, max_retries=0)
    answer = alice.chat.completions.create(model="sonnet", messages=first).choices[0].message.content
    follow = [*first, {"role": "assistant", "content": answer}, {"role": "user", "content": "which number?"}]
    # Bob sends Alice's exact history: never Alice's held process (nor her account).
    bob = openai.OpenAI(base_url=keyed.openai_url, api_key=BOB, max_retries=0)
    raw = bob.chat.completions.with_raw_response.create(model="sonnet", messages=follow)
    assert raw.headers["x-bridge-process"].startswith(("cold", "spare")) and raw.headers["x-bridge-account"] == "b"
    # Alice's own follow-up is still warm, on her account.
    raw = alice.chat.completions.with_raw_response.create(model="sonnet", messages=follow)
    assert not raw.headers["x-bridge-process"].startswith("cold") and raw.headers["x-bridge-account"] == "a"


def test_a_keys_limits_refuse_through_each_sdk(keyed, fake):
    client = openai.OpenAI(base_url=keyed.openai_url, api_key=CI, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError, match="may not use the model 'sonnet'"):
        client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}])
    messages = anthropic.Anthropic(base_url=keyed.base_url, api_key=CI, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError):
        messages.messages.create(model="sonnet", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    local = ollama.Client(host=keyed.ollama_url, headers={"authorization": f"Bearer {CI}"})
    with pytest.raises(ollama.ResponseError) as refused:
        local.chat(model="sonnet", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 403
    # Two allowed requests a minute, then 429 with Retry-After in every SDK's terms.
    assert client.chat.completions.create(model="haiku", messages=[{"role": "user", "content": "hi"}])
    assert messages.messages.create(model="haiku", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="haiku", messages=[{"role": "user", "content": "hi"}])
    assert int(limited.value.response.headers["retry-after"]) > 0
    with pytest.raises(anthropic.RateLimitError):
        messages.messages.create(model="haiku", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(ollama.ResponseError) as limited_ollama:
        local.chat(model="haiku", messages=[{"role": "user", "content": "hi"}])
    assert limited_ollama.value.status_code == 429


def test_without_a_valid_key_only_health_and_root_answer(keyed):
    assert httpx.get(f"{keyed.base_url}/health", timeout=10).status_code == 200
    assert httpx.get(f"{keyed.ollama_url}/", timeout=10).status_code == 200
    for url in (f"{keyed.openai_url}/models", f"{keyed.ollama_url}/api/tags", f"{keyed.base_url}/metrics"):
        assert httpx.get(url, timeout=10).status_code == 401
        assert httpx.get(url, headers={"authorization": "Bearer nope"}, timeout=10).status_code == 401
        assert httpx.get(url, headers={"authorization": f"Bearer {BOB}"}, timeout=10).status_code == 200
    health = httpx.get(f"{keyed.base_url}/health", timeout=10).json()
    assert "accounts" not in health  # details only with a key


def test_a_keys_daily_token_budget_refuses_past_it_in_each_sdk_and_survives_a_restart(start_bridge, fake, tmp_path):
    """tokens_per_day = 20: the fake reports 11 + 4 tokens a turn, so two turns pass (the
    second starts at 15 < 20) and the third is refused, in each SDK's terms, also after a
    restart (the counts come back from the usage ledger)."""
    budget = FILE + f'\n[keys.dana]\nkey_sha256 = "{sha256_hex(DANA)}"\naccounts = ["a"]\ntokens_per_day = 20\n'
    path = tmp_path / "accounts.toml"
    path.write_text(budget)
    data = tmp_path / "data"
    env = {"ACCOUNTS_FILE": str(path), "TOKEN_A": TOKEN_A, "TOKEN_B": TOKEN_B, "ANTHROPIC_API_KEY": None}
    server = start_bridge(DATA_DIR=str(data), **env)
    client = openai.OpenAI(base_url=server.openai_url, api_key=DANA, max_retries=0)
    for _ in range(2):
        client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}])
    wait_for(lambda: server.log().count("key=dana") >= 2)  # charged once each request's record is done
    with pytest.raises(openai.RateLimitError, match="tokens_per_day") as raised:
        client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}])
    assert int(raised.value.response.headers["retry-after"]) <= 86400
    with pytest.raises(anthropic.RateLimitError, match="dana"):
        anthropic.Anthropic(base_url=server.base_url, api_key=DANA, max_retries=0).messages.create(
            model="sonnet", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(ollama.ResponseError, match="tokens_per_day"):
        ollama.Client(host=server.ollama_url, headers={"Authorization": f"Bearer {DANA}"}).chat(
            model="sonnet", messages=[{"role": "user", "content": "hi"}]
        )
    server.stop()
    again = start_bridge(DATA_DIR=str(data), **env)
    with pytest.raises(openai.RateLimitError, match="tokens_per_day"):
        openai.OpenAI(base_url=again.openai_url, api_key=DANA, max_retries=0).chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": "hi"}]
        )
    alice = openai.OpenAI(base_url=again.openai_url, api_key=ALICE, max_retries=0)  # another key: no budget
    assert alice.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}]).choices


def test_keys_added_and_revoked_take_effect_without_a_restart(start_bridge, fake, tmp_path):
    """The accounts file edited under a running bridge: a new key works within seconds, a
    revoked one is refused, warm processes stay; a file that no longer reads keeps the running
    keys and /health says so; SIGHUP reloads too (issue 27, item 5)."""
    import signal

    path = tmp_path / "accounts.toml"
    path.write_text(FILE)
    server = start_bridge(ACCOUNTS_FILE=str(path), TOKEN_A=TOKEN_A, TOKEN_B=TOKEN_B, ANTHROPIC_API_KEY=None)

    def status(key: str) -> int:
        return httpx.post(
            f"{server.openai_url}/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]},
            timeout=60,
        ).status_code

    def health() -> dict:
        return httpx.get(f"{server.base_url}/health", headers={"authorization": f"Bearer {ALICE}"}, timeout=10).json()

    assert status(ALICE) == 200 and status(DANA) == 401
    pids = server.cli_pids()
    path.write_text(FILE + f'\n[keys.dana]\nkey_sha256 = "{sha256_hex(DANA)}"\naccounts = ["a"]\n')
    assert wait_for(lambda: status(DANA) == 200, timeout=15)
    revoked = FILE.replace(f'[keys.bob]\nkey_sha256 = "{sha256_hex(BOB)}"\naccounts = ["b"]\n', "")
    path.write_text(revoked + f'\n[keys.dana]\nkey_sha256 = "{sha256_hex(DANA)}"\naccounts = ["a"]\n')
    assert wait_for(lambda: status(BOB) == 401, timeout=15)
    assert server.cli_pids() & pids  # warm processes of unchanged accounts are untouched
    path.write_text("this is [not toml")
    assert wait_for(lambda: health().get("accounts_file", {}).get("problem", "").startswith("the accounts file"), 15)
    assert status(DANA) == 200 and status(BOB) == 401  # the running keys stay
    assert "not valid TOML" in server.log() and TOKEN_A not in server.log()
    path.write_text(FILE)  # bob back, dana gone; a SIGHUP applies it at once
    server.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: status(BOB) == 200 and status(DANA) == 401, timeout=15)
    assert health()["accounts_file"]["problem"] == ""


ERIN = "ccb-e2e-erin-3b6d"


def test_a_keys_window_share_refuses_past_it_in_each_sdk_and_survives_a_restart(start_bridge, fake, tmp_path):
    """window_share = 0.25 with a 5-hour window that rises 0.1 with every answer: the first
    reading sets the baseline, then each turn is charged its rise; once Erin's charges reach a
    quarter of account a's window her turns are refused in each SDK's terms, with Retry-After
    until the window's reset, while Bob (no share, another key) is still served; the charges
    are in the usage ledger and come back after a restart."""
    import json
    import time

    resets_at = int(time.time()) + 3 * 3600
    shared = FILE.replace('accounts = ["b"]\n[keys.ci]', 'accounts = ["a"]\n[keys.ci]')  # Bob on a too
    shared += f'\n[keys.erin]\nkey_sha256 = "{sha256_hex(ERIN)}"\naccounts = ["a"]\nwindow_share = 0.25\n'
    path = tmp_path / "accounts.toml"
    path.write_text(shared)
    data = tmp_path / "data"
    env = {"ACCOUNTS_FILE": str(path), "TOKEN_A": TOKEN_A, "TOKEN_B": TOKEN_B, "ANTHROPIC_API_KEY": None}
    window = fake.rising_window(start=0.1, step=0.1, resets_at=resets_at)
    server = start_bridge(DATA_DIR=str(data), **env)
    erin = openai.OpenAI(base_url=server.openai_url, api_key=ERIN, max_retries=0)
    served = 0
    with pytest.raises(openai.RateLimitError, match="window_share") as raised:
        for _ in range(8):
            erin.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}])
            served += 1
            wait_for(lambda n=served: server.log().count("key=erin") >= n)  # its record (and charge) is done
    # The first answer only sets the baseline; each later one is charged its rise of 0.1, so
    # the fourth answer brings Erin to 0.3 >= 0.25 (a third, if a side call of a CLI process
    # took a reading of its own first: its rise is charged to the next turn that ends).
    seen = list(window.readings)
    assert served in (3, 4) and len(seen) >= served
    retry_after = int(raised.value.response.headers["retry-after"])
    assert resets_at - time.time() - 60 < retry_after <= resets_at - time.time() + 1
    with pytest.raises(anthropic.RateLimitError, match="erin"):
        anthropic.Anthropic(base_url=server.base_url, api_key=ERIN, max_retries=0).messages.create(
            model="sonnet", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(ollama.ResponseError, match="window_share"):
        ollama.Client(host=server.ollama_url, headers={"Authorization": f"Bearer {ERIN}"}).chat(
            model="sonnet", messages=[{"role": "user", "content": "hi"}]
        )
    bob = openai.OpenAI(base_url=server.openai_url, api_key=BOB, max_retries=0)
    assert bob.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}]).choices
    budgets = httpx.get(
        f"{server.base_url}/dashboard/data", headers={"authorization": f"Bearer {BOB}"}, timeout=10
    ).json()["key_budgets"]
    [erins] = [row for row in budgets if row["key"] == "erin"]  # the dashboard's key budgets
    assert erins["window_share"] == 0.25 and erins["windows"]["a"]["used"] >= 0.25
    assert erins["windows"]["a"]["resets_at"] == resets_at
    rows = [json.loads(line) for f in data.glob("usage-*.jsonl") for line in f.read_text().splitlines()]
    charged = [row["window_used"] for row in rows if row["key_label"] == "erin" and row["window_used"]]
    assert sum(charged) == pytest.approx(seen[-1] - seen[0]) and sum(charged) >= 0.25
    assert {r["window_reset"] for r in rows if r["window_used"]} == {resets_at}
    server.stop()
    again = start_bridge(DATA_DIR=str(data), **env)
    with pytest.raises(openai.RateLimitError, match="window_share"):
        openai.OpenAI(base_url=again.openai_url, api_key=ERIN, max_retries=0).chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": "hi"}]
        )


TOKEN_C = "sk-ant-oat01-SECRET-ACCOUNT-C-90be11"


def chat_as(server, key: str, text: str = "hi") -> httpx.Response:
    """One OpenAI chat turn with ``key``, over plain HTTP (the status is the test's business)."""
    return httpx.post(
        f"{server.openai_url}/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "sonnet", "messages": [{"role": "user", "content": text}]},
        timeout=60,
    )


def logins_of(server) -> dict[int, str]:
    """Each CLI process under the server and the OAuth token its environment holds ("")."""
    import psutil

    logins = {}
    for pid in server.cli_pids():
        with contextlib.suppress(psutil.Error):
            logins[pid] = psutil.Process(pid).environ().get("CLAUDE_CODE_OAUTH_TOKEN", "")
    return logins


def test_accounts_added_and_removed_take_effect_without_a_restart(start_bridge, fake, tmp_path):
    """Account b removed and c added to a running bridge's file: Bob's key (moved to c) reaches
    the upstream with c's token within seconds, b's processes are stopped, a's warm processes
    are untouched (they never carried c's token: a variable holding a credential is withheld
    from every other account from the start), /health lists a and c."""
    path = tmp_path / "accounts.toml"
    path.write_text(FILE)
    env = {"TOKEN_A": TOKEN_A, "TOKEN_B": TOKEN_B, "TOKEN_C": TOKEN_C, "ANTHROPIC_API_KEY": None}
    server = start_bridge(ACCOUNTS_FILE=str(path), **env)

    def turn(key: str) -> httpx.Response:
        return chat_as(server, key)

    assert turn(ALICE).status_code == 200 and turn(BOB).status_code == 200
    before = logins_of(server)
    assert TOKEN_B in before.values() and TOKEN_C not in before.values()
    warm_a = {pid for pid, token in before.items() if token == TOKEN_A}
    assert warm_a
    changed = FILE.replace('[accounts.b]\noauth_token_env = "TOKEN_B"', '[accounts.c]\noauth_token_env = "TOKEN_C"')
    path.write_text(changed.replace('accounts = ["b"]', 'accounts = ["c"]'))

    def bob_on_c() -> bool:
        fake.received.clear()
        response = turn(BOB)
        return response.status_code == 200 and {call.token for call in fake.received} == {TOKEN_C}

    assert wait_for(bob_on_c, timeout=20)
    assert wait_for(lambda: TOKEN_B not in logins_of(server).values(), timeout=20)  # b's processes stopped
    # a's warm processes untouched (the pool may still retire a surplus spare of its own)
    assert "processes stopped for b" in server.log() and warm_a & set(logins_of(server))
    for process_env_token in logins_of(server).values():
        assert process_env_token in (TOKEN_A, TOKEN_C)
    health = httpx.get(f"{server.base_url}/health", headers={"authorization": f"Bearer {ALICE}"}, timeout=10).json()
    assert set(health["accounts"]) == {"a", "c"} and health["accounts_file"]["problem"] == ""
    assert TOKEN_C not in server.log() and TOKEN_B not in server.log()
