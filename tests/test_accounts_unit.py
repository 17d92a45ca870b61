"""Accounts and keys without a server: the file's checks, key lookup, per-key limits, the
choice of account and each account's environment."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from claude_cli_bridge.accounts.book import AccountBook
from claude_cli_bridge.accounts.config import AccountsFileError, load, single_account
from claude_cli_bridge.accounts.credentials import account_env
from claude_cli_bridge.accounts.keys import KeyRing, sha256_hex
from claude_cli_bridge.accounts.limits import KeyLimits
from claude_cli_bridge.core.caller import Caller
from claude_cli_bridge.core.limits import RateLimitInfo, WindowReading
from claude_cli_bridge.errors import AccountsRefused, CliNotLoggedIn, KeyLimitReached, UpstreamError

pytestmark = pytest.mark.unit

ENV = {"TOKEN_A": "tok-a", "KEY_C": "key-c", "HOME": "/home/me", "ANTHROPIC_API_KEY": "server-key"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    return path


def test_a_complete_file_reads_in_order(tmp_path):
    (tmp_path / "cfg").mkdir()
    path = write(
        tmp_path,
        f"""
[accounts.work]
config_dir = "{tmp_path / "cfg"}"
[accounts.a]
oauth_token_env = "TOKEN_A"
[accounts.c]
api_key_env = "KEY_C"
[keys.alice]
key_sha256 = "{sha256_hex("alice-key")}"
accounts = ["a", "c"]
models = ["sonnet"]
max_concurrent = 2
requests_per_minute = 10
[keys.bob]
key_sha256 = "{sha256_hex("bob-key").upper()}"
""",
    )
    config = load(path, ENV)
    assert config.names == ("work", "a", "c")
    assert [a.kind for a in config.accounts] == ["config_dir", "oauth_token", "api_key"]
    alice, bob = (key.caller for key in config.keys)
    assert (alice.accounts, alice.models, alice.max_concurrent, alice.requests_per_minute) == (
        ("a", "c"),
        ("sonnet",),
        2,
        10,
    )
    assert bob.accounts == ("work", "a", "c") and config.keys[1].key_sha256 == sha256_hex("bob-key")


@pytest.mark.parametrize(
    "text, words",
    [
        ('[accounts.a]\noauth_token_env = "TOKEN_A"\n[keys.k]\nkey_sha256 = "abc"\n', "64 hex digits"),
        (
            '[accounts.a]\noauth_token_env = "TOKEN_A"\n'
            f'[keys.k]\nkey_sha256 = "{"a" * 64}"\n[keys.j]\nkey_sha256 = "{"a" * 64}"\n',
            "same key_sha256",
        ),
        (
            '[accounts.a]\noauth_token_env = "TOKEN_A"\n[keys.k]\nkey_sha256 = "'
            + "a" * 64
            + '"\nmax_concurrent = 0\n',
            "max_concurrent",
        ),
        ('[accounts."a b"]\noauth_token_env = "TOKEN_A"\n', "the name must be"),
        ('[accounts.a]\noauth_token_env = "not a name"\n', "must name an environment variable"),
        ("[other]\nx = 1\n", "unknown table 'other'"),
        ('[accounts.a]\noauth_token_env = "TOKEN_A"\ntokens_per_day = 5\n', "a key's setting; put it in a"),
        ('[accounts.a]\noauth_token_env = "TOKEN_A"\nextra_usage = "yes"\n', 'extra_usage must be "refuse"'),
        *(
            (
                f'[accounts.a]\noauth_token_env = "TOKEN_A"\n[keys.k]\nkey_sha256 = "{"a" * 64}"\nwindow_share = {v}\n',
                "window_share must be a number above 0 and at most 1",
            )
            for v in ("-0.1", "1.5", "0", '"half"', "true")
        ),
    ],
)
def test_bad_entries_are_named_with_their_fix(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(AccountsFileError, match=words) as raised:
        load(path, ENV)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_keys_are_found_by_hash_and_named_never_shown():
    config = load_two_keys()
    ring = KeyRing(config, ["shared-secret"])
    assert ring.identify("alice-key").name == "alice"
    assert ring.identify("shared-secret").name == "shared"
    assert ring.identify("shared-secret").accounts == config.names
    assert ring.identify("nope") is None and ring.identify(None) is None
    assert KeyRing(single_account(), []).identify(None).name is None  # no keys: anonymous


def load_two_keys():
    from claude_cli_bridge.accounts.config import Account, AccountsConfig, ClientKey

    return AccountsConfig(
        (Account("a", "oauth_token", "TOKEN_A"), Account("c", "api_key", "KEY_C")),
        (ClientKey(hashlib.sha256(b"alice-key").hexdigest(), Caller("alice", ("c",))),),
    )


def test_max_concurrent_and_requests_per_minute():
    now = [1000.0]
    limits = KeyLimits(clock=lambda: now[0])
    caller = Caller("k", ("a",), max_concurrent=2, requests_per_minute=3)
    first, second = limits.admit(caller), limits.admit(caller)
    with pytest.raises(KeyLimitReached, match="max_concurrent") as raised:
        limits.admit(caller)
    assert raised.value.retry_after == 1
    first.release()
    first.release()  # idempotent
    third = limits.admit(caller)
    with pytest.raises(KeyLimitReached, match="requests_per_minute") as raised:
        now[0] += 20
        second.release()
        limits.admit(caller)
    assert raised.value.retry_after == 40  # the first request leaves the minute in 40 s
    now[0] += 41
    limits.admit(caller).release()
    third.release()
    assert limits.running("k") == 0


def test_the_windows_decide_the_account_order_and_the_refusal():
    now = [10_000.0]
    config = load_two_keys()
    book = AccountBook(config, None, clock=lambda: now[0])
    caller = Caller("alice", ("a", "c"))
    assert book.order(caller) == ["a", "c"]
    assert book.order(caller, holder="c") == ["c", "a"]
    book.read("a", RateLimitInfo("rejected", resets_at=int(now[0]) + 3600, window="five_hour"))
    assert book.order(caller, holder="a") == ["c"]
    book.refused("c", UpstreamError("429", status=429, retry_after=600))
    assert book.order(caller) == []
    refusal = book.refusal(caller)
    assert isinstance(refusal, AccountsRefused) and refusal.retry_after == 600
    now[0] += 601
    assert book.order(caller) == ["c"]
    now[0] += 3000
    assert book.order(caller) == ["a", "c"]  # a's reset passed
    book.refused("a", CliNotLoggedIn("not logged in"))
    assert book.snapshot()["a"].state == "failing" and book.order(caller) == ["c"]


def test_a_model_familys_window_holds_back_that_family_only_on_that_account():
    """seven_day_opus on account a: Opus turns go to c, Sonnet and Haiku turns stay on a."""
    from claude_cli_bridge.cli.result import window_exhausted

    now = [10_000.0]
    book = AccountBook(load_two_keys(), None, clock=lambda: now[0])
    caller = Caller("alice", ("a", "c"))
    book.refused("a", window_exhausted("seven_day_opus", int(now[0]) + 86400, "", now[0]))
    assert book.order(caller, model="claude-opus-4-6") == ["c"]
    assert book.order(caller, model="sonnet") == ["a", "c"] and book.order(caller, model="haiku") == ["a", "c"]
    assert book.snapshot()["a"].state == "ok"
    book.refused("c", window_exhausted("seven_day_opus", int(now[0]) + 7200, "", now[0]))
    refusal = book.refusal(caller, "opus")
    assert isinstance(refusal, AccountsRefused) and refusal.retry_after == 7200
    book.read("a", RateLimitInfo("rejected", resets_at=int(now[0]) + 600, window="five_hour"))
    assert book.order(caller, model="sonnet") == ["c"]  # a window of every model: all of a's


def test_each_account_environment_holds_its_own_login_only(tmp_path):
    (tmp_path / "cfg").mkdir()
    path = write(
        tmp_path,
        f'[accounts.a]\noauth_token_env = "TOKEN_A"\n[accounts.c]\napi_key_env = "KEY_C"\n'
        f'[accounts.w]\nconfig_dir = "{tmp_path / "cfg"}"\n',
    )
    config = load(path, ENV)
    state = tmp_path / "state"
    a, c, w = (account_env(account, config, ENV, state) for account in config.accounts)
    assert a["CLAUDE_CODE_OAUTH_TOKEN"] == "tok-a" and "ANTHROPIC_API_KEY" not in a and "TOKEN_A" not in a
    assert c["ANTHROPIC_API_KEY"] == "key-c" and "CLAUDE_CODE_OAUTH_TOKEN" not in c and "KEY_C" not in c
    assert w["CLAUDE_CONFIG_DIR"] == str(tmp_path / "cfg") and not {"TOKEN_A", "KEY_C", "ANTHROPIC_API_KEY"} & set(w)
    assert a["CLAUDE_CONFIG_DIR"] == str(state / "cli-config-a") and a["HOME"] == "/home/me"


def test_remembered_thinking_comes_back_to_the_tenant_that_made_it_only():
    from claude_cli_bridge.core.messages import Message, TextBlock, ThinkingBlock, ToolUseBlock
    from claude_cli_bridge.engine.thinking import ThinkingMemory

    memory = ThinkingMemory()
    call = ToolUseBlock("toolu_1", "weather", '{"city":"Paris"}')
    memory.remember(Message("assistant", (ThinkingBlock("secret plan", "sig-alice"), call)), "alice")
    history = [Message("user", (TextBlock("weather?"),)), Message("assistant", (call,))]
    assert isinstance(memory.restore(history, "alice")[1].content[0], ThinkingBlock)
    assert memory.restore(history, "bob")[1].content == (call,)  # another key: nothing of Alice's


def test_token_budgets_by_utc_day_and_iso_week_and_from_the_ledger():
    from datetime import UTC, datetime

    from claude_cli_bridge.accounts.budgets import TokenBudgets

    monday = datetime(2026, 11, 30, 23, 59, 0, tzinfo=UTC).timestamp()  # a Monday, one minute to midnight
    now = [monday]
    budgets = TokenBudgets(clock=lambda: now[0])
    budgets.load([
        {"time": "2026-11-30T10:00:00.000Z", "key_label": "alice", "input_tokens": 60, "output_tokens": 40},
        {"time": "2026-11-29T10:00:00.000Z", "key_label": "alice", "input_tokens": 500, "output_tokens": 0},  # last week
        {"time": "2026-11-30T10:00:00.000Z", "key_label": "bob", "input_tokens": 999, "output_tokens": 0},
    ])  # fmt: skip
    alice = Caller("alice", ("a",), tokens_per_day=100, tokens_per_week=150)
    assert budgets.used("alice") == (100, 100)
    with pytest.raises(KeyLimitReached, match="tokens_per_day") as raised:
        budgets.check(alice)
    assert raised.value.retry_after == 60  # midnight UTC
    now[0] += 120  # Tuesday: a new day, the same week
    budgets.check(alice)
    budgets.charge("alice", 50)
    with pytest.raises(KeyLimitReached, match="tokens_per_week") as raised:
        budgets.check(alice)
    assert raised.value.retry_after == 6 * 86400 - 60  # next Monday 00:00 UTC
    budgets.check(Caller("carol", ("a",), tokens_per_day=1))  # nothing used


def test_a_reload_that_would_remove_every_key_keeps_the_running_ones(tmp_path):
    """Started with keys, a file without any would open every route: refused, keys kept."""
    from claude_cli_bridge.accounts.reload import AccountsReloader

    one_key = f'[accounts.a]\noauth_token_env = "TOKEN_A"\n[keys.k]\nkey_sha256 = "{sha256_hex("kk")}"\n'
    path = write(tmp_path, one_key)
    config = load(path, ENV)
    ring = KeyRing(config, [])
    reloader = AccountsReloader(config, ring, ENV)
    path.write_text('[accounts.a]\noauth_token_env = "TOKEN_A"\n')
    assert not reloader.reload() and "open every route" in reloader.problem
    assert ring.required and ring.identify("kk") is not None and ring.identify(None) is None
    path.write_text(one_key + '[accounts.b]\noauth_token_env = "TOKEN_A"\n')
    assert reloader.reload() and "restart" in reloader.problem  # a new account needs a restart


def test_window_shares_charge_each_rise_to_the_key_whose_turn_ended():
    """The first reading sets the baseline; each later one charges its rise to the turn's key;
    a new window (another reset) is charged whole; a key at its share is held back on that
    account until the reset, and on every account: a 429 naming the share."""
    from claude_cli_bridge.accounts.shares import WindowShares

    shares = WindowShares()
    assert shares.charge("alice", "a", (0.10, 5000)) is None  # the baseline
    assert shares.charge("alice", "a", (0.25, 5000)).used == pytest.approx(0.15)
    assert shares.charge("bob", "a", (0.30, 5000)).used == pytest.approx(0.05)
    assert shares.charge("bob", "a", (0.30, 5000)) is None  # no rise
    assert shares.charge("alice", "a", (0.07, 23000)).used == pytest.approx(0.07)  # a new window: whole
    assert shares.used("alice", "a", 5000) == pytest.approx(0.15) and shares.used("bob", "a", 5000) == 0.05
    shares.load([{"key_label": "alice", "account": "a", "window_used": 0.2, "window_reset": 23000},
                 {"key_label": "bob", "account": "a", "window_used": None, "window_reset": None}])  # fmt: skip
    assert shares.used("alice", "a", 23000) == pytest.approx(0.27)

    now = [1000.0]
    book = AccountBook(load_two_keys(), None, clock=lambda: now[0])
    alice = Caller("alice", ("a", "c"), window_share=0.25)
    book.read("a", RateLimitInfo("allowed", windows=(WindowReading("five_hour", 0.1, 5000),)))
    assert book.charge(alice, "a") is None  # the baseline
    book.read("a", RateLimitInfo("allowed", windows=(WindowReading("five_hour", 0.4, 5000),)))
    assert book.charge(alice, "a").used == pytest.approx(0.3)
    assert book.order(alice) == ["c"] and book.order(Caller("bob", ("a", "c"))) == ["a", "c"]
    book.refused("c", UpstreamError("no", status=429, retry_after=60))
    refusal = book.refusal(alice)
    assert isinstance(refusal, KeyLimitReached) and "window_share (0.25)" in refusal.message
    assert refusal.retry_after == 60  # c frees first
    now[0] = 5000.0  # the window resets: a new one, nothing of it used
    assert book.order(alice) == ["a", "c"]


def test_an_account_that_allows_extra_usage_keeps_serving_past_a_used_up_window():
    from claude_cli_bridge.accounts.config import Account, AccountsConfig

    config = AccountsConfig((Account("a", "oauth_token", "TOKEN_A", "allow"), Account("c", "oauth_token", "TOKEN_C")))
    book = AccountBook(config, None, clock=lambda: 1000.0)
    used_up = RateLimitInfo(
        "rejected", window="five_hour", resets_at=9000, overage_status="allowed", using_overage=True
    )
    for name in ("a", "c"):
        book.read(name, used_up)
    caller = Caller("alice", ("a", "c"))
    assert book.order(caller) == ["a"]  # c refuses extra usage (the default)
    book.read("a", RateLimitInfo("rejected", window="five_hour", resets_at=9000, overage_status="rejected"))
    assert book.order(caller) == []  # no extra usage either: a is out too
