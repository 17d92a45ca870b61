"""What accounts and keys add to a request: the same chat request through the bridge's HTTP
layer and turn pipeline (a scripted engine, no CLI, ``httpx.ASGITransport``) without an
accounts file and with one (3 accounts, 10 keys, the caller's key with models, concurrency
and per-minute limits), alternating, in one run; plus the engine's own choice of account
(``AccountBook.order`` over 3 accounts) timed alone, since the scripted engine skips it.

Reports the p50 and p95 of each and the p50 difference (the issue's bound: 0.2 ms).

    python bench/bench_accounts.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
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
from claude_cli_bridge.app import create_app
from claude_cli_bridge.core.caller import Caller
from claude_cli_bridge.settings import Settings

BODY = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
KEY = "ccb-bench-key-7"
ACCOUNTS = AccountsConfig(
    tuple(Account(name, "oauth_token", f"TOKEN_{name.upper()}") for name in ("a", "b", "c")),
    tuple(
        ClientKey(
            f"user{i}",
            sha256_hex(f"ccb-bench-key-{i}"),
            ("a", "b", "c"),
            models=("sonnet", "haiku"),
            max_concurrent=4,
            requests_per_minute=1_000_000,
        )
        for i in range(10)
    ),
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
    plain, keyed = client(None), client(ACCOUNTS)
    headers = {"authorization": f"Bearer {KEY}"}
    async with plain, keyed:
        for _ in range(50):  # warm both
            await timed(plain, {})
            await timed(keyed, headers)
        without, with_keys = [], []
        for _ in range(requests):
            without.append(await timed(plain, {}))
            with_keys.append(await timed(keyed, headers))
    (p50_a, p95_a), (p50_b, p95_b) = quantiles(without), quantiles(with_keys)
    print(f"request without ACCOUNTS_FILE: p50 {p50_a:.3f} ms, p95 {p95_a:.3f} ms")
    print(f"request with a key and limits: p50 {p50_b:.3f} ms, p95 {p95_b:.3f} ms")
    print(f"added by the key (p50): {p50_b - p50_a:+.3f} ms ({p50_b / p50_a:.3f}x)")

    book = AccountBook(ACCOUNTS, None)
    caller = Caller("user7", ("a", "b", "c"))
    rounds = 100_000
    started = time.perf_counter()
    for _ in range(rounds):
        book.order(caller, "b")
    print(f"choice of account (3 accounts): {(time.perf_counter() - started) / rounds * 1e6:.2f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    asyncio.run(main(parser.parse_args().requests))
