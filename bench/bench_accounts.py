"""What accounts and keys add to a request: the same chat request through the bridge's HTTP
layer and turn pipeline (a scripted engine, no CLI, ``httpx.ASGITransport``) without an
accounts file and with one (3 accounts, 10 keys, the caller's key with models, concurrency
and per-minute limits), alternating, in one run; plus the engine's own choice of account
(``AccountBook.order`` over 3 accounts) timed alone, since the scripted engine skips it.

A third client has the same keys with budgets (``tokens_per_day``, ``tokens_per_week``,
``window_share``), checked on every request, and the choice of account is timed with a key
that has a window share too: what budgets add, as a ratio to the same keys without them.

Reports the p50 and p95 of each and the p50 difference (the issue's bound: 0.2 ms).

    python bench/bench_accounts.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import httpx
from scripted_engine import ScriptedEngine

from claude_cli_bridge.accounts.book import AccountBook
from claude_cli_bridge.accounts.config import Account, AccountsConfig, ClientKey
from claude_cli_bridge.accounts.keys import sha256_hex
from claude_cli_bridge.api.app import create_app
from claude_cli_bridge.core.caller import Caller
from claude_cli_bridge.core.limits import RateLimitInfo, WindowReading
from claude_cli_bridge.settings import Settings

BODY = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
KEY = "ccb-bench-key-7"
ACCOUNTS = AccountsConfig(
    tuple(Account(name, "oauth_token", f"TOKEN_{name.upper()}") for name in ("a", "b", "c")),
    tuple(
        ClientKey(
            sha256_hex(f"ccb-bench-key-{i}"),
            Caller(
                f"user{i}", ("a", "b", "c"), models=("sonnet", "haiku"), max_concurrent=4, requests_per_minute=1_000_000
            ),
        )
        for i in range(10)
    ),
)
# The same keys with budgets. ``from_file`` names a file that does not exist: budgets are kept
# for an accounts file's keys, and the reloader finds nothing to read again.
BUDGETED = AccountsConfig(
    ACCOUNTS.accounts,
    tuple(
        dataclasses.replace(
            key, caller=dataclasses.replace(key.caller, tokens_per_day=10**12, tokens_per_week=10**13, window_share=0.5)
        )
        for key in ACCOUNTS.keys
    ),
    from_file=Path("/nonexistent/bench-accounts.toml"),
)


def client(accounts: AccountsConfig | None) -> httpx.AsyncClient:
    app = create_app(Settings(_env_file=None), ScriptedEngine(), accounts=accounts)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")


async def timed(http: httpx.AsyncClient, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    response = await http.post("/v1/chat/completions", json=BODY, headers=headers)
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.95)] * 1e3


async def main(requests: int) -> None:
    plain, keyed, budgeted = client(None), client(ACCOUNTS), client(BUDGETED)
    headers = {"authorization": f"Bearer {KEY}"}
    async with plain, keyed, budgeted:
        for _ in range(50):  # warm all three
            await timed(plain, {})
            await timed(keyed, headers)
            await timed(budgeted, headers)
        without, with_keys, with_budgets = [], [], []
        for _ in range(requests):
            without.append(await timed(plain, {}))
            with_keys.append(await timed(keyed, headers))
            with_budgets.append(await timed(budgeted, headers))
    (p50_a, p95_a), (p50_b, p95_b) = quantiles(without), quantiles(with_keys)
    p50_c, p95_c = quantiles(with_budgets)
    print(f"request without ACCOUNTS_FILE: p50 {p50_a:.3f} ms, p95 {p95_a:.3f} ms")
    print(f"request with a key and limits: p50 {p50_b:.3f} ms, p95 {p95_b:.3f} ms")
    print(f"request with a key, limits and budgets: p50 {p50_c:.3f} ms, p95 {p95_c:.3f} ms")
    print(f"added by the key (p50): {p50_b - p50_a:+.3f} ms ({p50_b / p50_a:.3f}x)")
    print(f"added by its budgets (p50): {p50_c - p50_b:+.3f} ms ({p50_c / p50_b:.3f}x the key without budgets)")

    rounds = 100_000
    book = AccountBook(BUDGETED, None)
    for name in ("a", "b", "c"):  # a current 5-hour reading on each account, and some of it used
        book.read(name, RateLimitInfo("allowed", windows=(WindowReading("five_hour", 0.1, int(time.time()) + 3600),)))
        book.charge(Caller("user7", ("a", "b", "c")), name)
    timings = {}
    for label, caller in (
        ("without budgets", Caller("user7", ("a", "b", "c"))),
        ("with a window share", Caller("user7", ("a", "b", "c"), window_share=0.5)),
    ):
        started = time.perf_counter()
        for _ in range(rounds):
            book.order(caller, "b")
        timings[label] = (time.perf_counter() - started) / rounds * 1e6
        print(f"choice of account (3 accounts, {label}): {timings[label]:.2f} us")
    ratio = timings["with a window share"] / timings["without budgets"]
    print(f"the window share's check: {ratio:.2f}x the choice without it")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    asyncio.run(main(parser.parse_args().requests))
