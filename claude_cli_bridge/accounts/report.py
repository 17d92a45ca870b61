"""The ``accounts`` and ``keys add`` commands: what a person reads in a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..core.caller import Caller
from ..settings import Settings
from .book import AccountBook, windows_file
from .budgets import TokenBudgets
from .config import NAME_PATTERN, AccountsFileError, from_settings
from .keys import new_key, sha256_hex
from .windows import SubscriptionWindows


def key_budgets(callers: Iterable[Caller], budgets: TokenBudgets, book: AccountBook) -> list[dict[str, Any]]:
    """Each key that has a budget, its use against it (the dashboard, ``usage --by key``):
    tokens today and this ISO week, and per account the fraction of the current 5-hour window
    charged to it (``accounts.shares``; an account without a current reading is left out)."""
    rows = []
    for caller in callers:
        if caller.name is None or not (caller.tokens_per_day or caller.tokens_per_week or caller.window_share):
            continue
        today, week = budgets.used(caller.name)
        windows = {}
        if caller.window_share:
            for account in caller.accounts:
                reading = book.current_five_hour(account)
                if reading is not None:
                    used = book.shares.used(caller.name, account, reading[1])
                    windows[account] = {"used": used, "resets_at": reading[1]}
        rows.append({
            "key": caller.name,
            "tokens_today": today,
            "tokens_per_day": caller.tokens_per_day,
            "tokens_this_week": week,
            "tokens_per_week": caller.tokens_per_week,
            "window_share": caller.window_share,
            "windows": windows,
        })  # fmt: skip
    return rows


def print_accounts(settings: Settings, out: Callable[[str], None] = print) -> int:
    """Each account: how it logs in, whether that login is there, its last windows."""
    try:
        config = from_settings(settings.accounts_file)
    except AccountsFileError as exc:
        out(f"claude-cli-bridge: {exc}")
        return 2
    source = str(config.from_file) if config.from_file else "no ACCOUNTS_FILE: one account"
    out(f"Accounts ({source}):")
    for account in config.accounts:
        if account.kind == "config_dir":
            present = (Path(account.source) / ".credentials.json").is_file() or (
                Path(account.source) / ".claude.json"
            ).is_file()
            state = "logged in here" if present else "no login found in it yet (run claude there and /login)"
        elif account.kind == "environment":
            state = "as the server's environment or your own CLI login gives (see doctor)"
        else:
            state = "variable set"
        out(f"  {account.name}: {account.describe()}; {state}")
        windows = SubscriptionWindows(settings.data_dir, file_name=windows_file(account.name)).describe()
        for line in windows or ["no window reading yet"]:
            out(f"      {line}")
    if config.keys:
        out("Keys:")
        for key in (key.caller for key in config.keys):
            limits = [
                f"models {', '.join(key.models)}" if key.models else "any model",
                f"max_concurrent {key.max_concurrent}" if key.max_concurrent else "",
                f"requests_per_minute {key.requests_per_minute}" if key.requests_per_minute else "",
            ]
            out(f"  {key.name}: accounts {', '.join(key.accounts)}; {'; '.join(x for x in limits if x)}")
    return 0


def print_budgets(settings: Settings, out: Callable[[str], None] = print) -> None:
    """Each key's use against its budgets (``usage --by key``), from the usage ledger and the
    accounts' last window readings."""
    from ..observe.ledger import read_usage

    try:
        config = from_settings(settings.accounts_file)
    except AccountsFileError:
        return  # `accounts` and `doctor` say why
    rows = read_usage(settings.data_dir, 8)  # the ISO week's token counts, and the current windows' charges
    budgets = TokenBudgets()
    budgets.load(rows)
    book = AccountBook(config, settings.data_dir)
    book.shares.load(rows)
    rows = key_budgets((key.caller for key in config.keys), budgets, book)
    if not rows:
        return
    out("Budgets (input plus output tokens, UTC day and ISO week; share of each account's current 5-hour window):")
    for row in rows:
        parts = []
        if row["tokens_per_day"]:
            parts.append(f"{row['tokens_today']:,} of {row['tokens_per_day']:,} today")
        if row["tokens_per_week"]:
            parts.append(f"{row['tokens_this_week']:,} of {row['tokens_per_week']:,} this week")
        if row["window_share"]:
            used = [f"{w['used'] * 100:.1f}% of {name}'s" for name, w in row["windows"].items()] or ["nothing of any"]
            parts.append(f"{', '.join(used)} 5-hour window (share {row['window_share'] * 100:g}%)")
        out(f"  {row['key']}: {'; '.join(parts)}")


def print_new_key(name: str, out: Callable[[str], None] = print) -> int:
    """A new random key, shown once, and the entry to paste into the accounts file (which
    holds only its SHA-256)."""
    if not NAME_PATTERN.match(name):
        out("claude-cli-bridge: a key name is letters, digits, '_', '.' or '-' (at most 64).")
        return 2
    key = new_key()
    out(f"New key for {name!r} (shown once; it is stored nowhere):")
    out("")
    out(f"  {key}")
    out("")
    out("Add this to the accounts file (ACCOUNTS_FILE):")
    out("")
    out(f"[keys.{name}]")
    out(f'key_sha256 = "{sha256_hex(key)}"')
    out('# accounts = ["..."]   # optional: which accounts, in order (default: all)')
    out("# a running bridge reads the file again within seconds (or on SIGHUP): no restart needed")
    return 0
