"""The ``accounts`` and ``keys add`` commands: what a person reads in a terminal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..settings import Settings
from ..windows import SubscriptionWindows
from .book import windows_file
from .config import NAME_PATTERN, AccountsFileError, from_settings
from .keys import new_key, sha256_hex


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
        for key in config.keys:
            limits = [
                f"models {', '.join(key.models)}" if key.models else "any model",
                f"max_concurrent {key.max_concurrent}" if key.max_concurrent else "",
                f"requests_per_minute {key.requests_per_minute}" if key.requests_per_minute else "",
            ]
            out(f"  {key.name}: accounts {', '.join(key.accounts)}; {'; '.join(x for x in limits if x)}")
    return 0


def print_budgets(settings: Settings, out: Callable[[str], None] = print) -> None:
    """Each key's use against its token budgets (``usage --by key``), from the usage ledger."""
    from ..observe.ledger import read_usage
    from .budgets import TokenBudgets

    try:
        config = from_settings(settings.accounts_file)
    except AccountsFileError:
        return  # `accounts` and `doctor` say why
    budgeted = [key for key in config.keys if key.tokens_per_day or key.tokens_per_week]
    if not budgeted:
        return
    budgets = TokenBudgets()
    budgets.load(read_usage(settings.data_dir, 8))
    out("Budgets (input plus output tokens; UTC day, ISO week):")
    for key in budgeted:
        today, week = budgets.used(key.name)
        parts = []
        if key.tokens_per_day:
            parts.append(f"{today:,} of {key.tokens_per_day:,} today")
        if key.tokens_per_week:
            parts.append(f"{week:,} of {key.tokens_per_week:,} this week")
        out(f"  {key.name}: {', '.join(parts)}")


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
