"""The accounts file (``ACCOUNTS_FILE``): which logins the bridge serves from and which client
keys may use them.

A TOML file, read with the standard library's ``tomllib``::

    [accounts.work]
    config_dir = "~/.claude-work"          # logged in with CLAUDE_CONFIG_DIR=~/.claude-work claude
    [accounts.personal]
    oauth_token_env = "PERSONAL_TOKEN"     # a `claude setup-token` token in this variable
    [accounts.console]
    api_key_env = "CONSOLE_KEY"            # a Console API key (billed per token)

    [keys.alice]
    key_sha256 = "9f86d0..."               # `claude-cli-bridge keys add alice` prints it
    accounts = ["work", "console"]         # in order of preference; default: all, in file order
    models = ["sonnet", "haiku"]           # optional: the models this key may ask for
    max_concurrent = 2                     # optional: turns at once
    requests_per_minute = 30               # optional

The file names variables and paths, never a secret itself. ``load`` checks everything at
start-up and raises ``AccountsFileError`` with one line naming the file, the entry and the fix;
the server refuses to start on it and ``doctor`` prints the same line.

Without a file there is one account, ``default``: the login the server's environment or the
user's own ``~/.claude`` gives, exactly as before accounts existed.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..core.caller import Caller

DEFAULT_ACCOUNT = "default"
LoginKind = Literal["config_dir", "oauth_token", "api_key", "environment"]

#: The login fields of an account entry and the kind each gives.
LOGIN_FIELDS: dict[str, LoginKind] = {
    "config_dir": "config_dir",
    "oauth_token_env": "oauth_token",
    "api_key_env": "api_key",
}
#: What an account entry takes besides its login: ``extra_usage = "allow"`` lets its turns go on
#: while the upstream bills them as extra usage (a used-up window with overage allowed); the
#: default, "refuse", holds the account back until the window resets.
ACCOUNT_OPTIONS = {"extra_usage": ("refuse", "allow")}
KEY_FIELDS = {
    "key_sha256", "accounts", "models", "max_concurrent", "requests_per_minute", "tokens_per_day", "tokens_per_week",
    "window_share",
}  # fmt: skip
#: Names end up in log lines, metric labels, headers and file names: keep them plain.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class AccountsFileError(ValueError):
    """The accounts file cannot be used; the message is one line: file, entry, fix."""


@dataclass(frozen=True)
class Account:
    """One login. ``source`` is the configuration directory (``config_dir``) or the name of the
    variable that holds the token or key; ``environment`` is the server's own environment or
    the user's own login (the ``default`` account without a file). The secret itself is read
    from the environment when a process is launched, never kept here."""

    name: str
    kind: LoginKind
    source: str = ""
    extra_usage: Literal["refuse", "allow"] = "refuse"

    @property
    def variable(self) -> str | None:
        """The environment variable holding this account's secret, if it is one."""
        return self.source if self.kind in ("oauth_token", "api_key") else None

    def describe(self) -> str:
        """How the account logs in, for `accounts`, doctor and /health (no secret)."""
        return {
            "config_dir": f"CLI configuration directory {self.source}",
            "oauth_token": f"OAuth token from ${self.source}",
            "api_key": f"Console API key from ${self.source}",
            "environment": "the server's environment or the user's own CLI login",
        }[self.kind]


@dataclass(frozen=True)
class ClientKey:
    """One client key of the file: the SHA-256 of the key (the key is stored nowhere) and the
    caller a request presenting it is, with the key's name, accounts and limits
    (``core.caller.Caller``)."""

    key_sha256: str
    caller: Caller

    @property
    def name(self) -> str:
        return self.caller.name or ""


@dataclass(frozen=True)
class AccountsConfig:
    """The accounts in file order and the keys by name. ``from_file`` is the file it came
    from (None: the single default account)."""

    accounts: tuple[Account, ...]
    keys: tuple[ClientKey, ...] = ()
    from_file: Path | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(account.name for account in self.accounts)

    @property
    def secret_variables(self) -> tuple[str, ...]:
        """Every variable any account reads its secret from (kept from every other account)."""
        return tuple(account.variable for account in self.accounts if account.variable)


def single_account() -> AccountsConfig:
    """No accounts file: one account from the environment or the user's own login."""
    return AccountsConfig((Account(DEFAULT_ACCOUNT, "environment"),))


def from_settings(accounts_file: str, environ: Mapping[str, str] | None = None) -> AccountsConfig:
    """The accounts ``ACCOUNTS_FILE`` names, or the single default account without one."""
    return load(Path(accounts_file).expanduser(), environ) if accounts_file.strip() else single_account()


def load(path: Path, environ: Mapping[str, str] | None = None) -> AccountsConfig:
    """Read and check the accounts file; AccountsFileError names the file, entry and fix."""
    environ = os.environ if environ is None else environ
    where = str(path)
    try:
        text = path.expanduser().read_bytes()
    except FileNotFoundError:
        raise AccountsFileError(f"{where}: no such file; set ACCOUNTS_FILE to an existing TOML file.") from None
    except OSError as exc:
        raise AccountsFileError(f"{where}: cannot be read ({exc.strerror}); check its permissions.") from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AccountsFileError(f"{where}: not valid TOML ({exc}); fix the syntax.") from None
    unknown = set(data) - {"accounts", "keys"}
    if unknown:
        raise AccountsFileError(
            f"{where}: unknown table {sorted(unknown)[0]!r}; only [accounts.NAME] and [keys.NAME] are read."
        )
    accounts = tuple(_account(where, name, entry, environ) for name, entry in _tables(where, data, "accounts"))
    if not accounts:
        raise AccountsFileError(f"{where}: no [accounts.NAME] entry; add at least one account.")
    names = tuple(account.name for account in accounts)
    keys = tuple(_key(where, name, entry, names) for name, entry in _tables(where, data, "keys"))
    seen: dict[str, str] = {}
    for key in keys:
        if key.key_sha256 in seen:
            raise AccountsFileError(
                f"{where}: [keys.{key.name}] has the same key_sha256 as [keys.{seen[key.key_sha256]}]; "
                "give each key its own (`claude-cli-bridge keys add NAME`)."
            )
        seen[key.key_sha256] = key.name
    return AccountsConfig(accounts, keys, path)


def _tables(where: str, data: dict[str, Any], table: str) -> list[tuple[str, dict[str, Any]]]:
    entries = data.get(table, {})
    if not isinstance(entries, dict):
        raise AccountsFileError(f"{where}: `{table}` must be a table of [{table}.NAME] entries.")
    result = []
    for name, entry in entries.items():
        if not NAME_PATTERN.match(name):
            raise AccountsFileError(
                f"{where}: [{table}.{name}]: the name must be letters, digits, '_', '.' or '-' (at most 64)."
            )
        if not isinstance(entry, dict):
            raise AccountsFileError(f"{where}: [{table}.{name}] must be a table.")
        result.append((name, entry))
    return result


def _account(where: str, name: str, entry: dict[str, Any], environ: Mapping[str, str]) -> Account:
    label = f"{where}: [accounts.{name}]"
    unknown = set(entry) - set(LOGIN_FIELDS) - set(ACCOUNT_OPTIONS)
    misplaced = sorted(unknown & KEY_FIELDS)
    if misplaced:
        raise AccountsFileError(
            f"{label}: {misplaced[0]} is a key's setting; put it in a [keys.NAME] entry "
            "(`claude-cli-bridge keys add NAME` prints one)."
        )
    if unknown:
        raise AccountsFileError(
            f"{label}: unknown field {sorted(unknown)[0]!r}; an account has exactly one of "
            "config_dir, oauth_token_env, api_key_env, and optionally extra_usage."
        )
    extra_usage = entry.get("extra_usage", "refuse")
    if extra_usage not in ACCOUNT_OPTIONS["extra_usage"]:
        raise AccountsFileError(f'{label}: extra_usage must be "refuse" (the default) or "allow".')
    given = [field for field in LOGIN_FIELDS if field in entry]
    if len(given) != 1:
        raise AccountsFileError(
            f"{label}: has {'none' if not given else ' and '.join(given)}; "
            "give exactly one of config_dir, oauth_token_env, api_key_env."
        )
    field = given[0]
    value = entry[field]
    if not isinstance(value, str) or not value.strip():
        raise AccountsFileError(f"{label}: {field} must be a non-empty string.")
    if field == "config_dir":
        directory = Path(value).expanduser()
        if not directory.is_dir():
            raise AccountsFileError(
                f"{label}: config_dir {value} is not a directory; log in with "
                f"`CLAUDE_CONFIG_DIR={value} claude` (then /login) first."
            )
        return Account(name, "config_dir", str(directory), extra_usage)
    if not _ENV_NAME.match(value):
        raise AccountsFileError(f"{label}: {field} must name an environment variable, e.g. MY_TOKEN.")
    if not environ.get(value):
        raise AccountsFileError(f"{label}: the variable {value} ({field}) is not set; export it before starting.")
    return Account(name, LOGIN_FIELDS[field], value, extra_usage)


def _key(where: str, name: str, entry: dict[str, Any], accounts: tuple[str, ...]) -> ClientKey:
    label = f"{where}: [keys.{name}]"
    unknown = set(entry) - KEY_FIELDS
    if unknown:
        raise AccountsFileError(
            f"{label}: unknown field {sorted(unknown)[0]!r}; a key takes {', '.join(sorted(KEY_FIELDS))}."
        )
    digest = entry.get("key_sha256")
    if not isinstance(digest, str) or not _HEX64.match(digest.lower()):
        raise AccountsFileError(
            f"{label}: key_sha256 must be 64 hex digits (the line `claude-cli-bridge keys add {name}` prints)."
        )
    chosen = entry.get("accounts", list(accounts))
    if not isinstance(chosen, list) or not chosen or not all(isinstance(a, str) for a in chosen):
        raise AccountsFileError(f"{label}: accounts must be a non-empty list of account names.")
    for account in chosen:
        if account not in accounts:
            raise AccountsFileError(f"{label}: names account {account!r}, which the file does not define.")
    models = entry.get("models")
    if models is not None and (
        not isinstance(models, list) or not models or not all(isinstance(m, str) and m.strip() for m in models)
    ):
        raise AccountsFileError(f"{label}: models must be a non-empty list of model names or aliases.")
    limits: dict[str, Any] = {}
    for field in ("max_concurrent", "requests_per_minute", "tokens_per_day", "tokens_per_week"):
        value = entry.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise AccountsFileError(f"{label}: {field} must be a whole number of at least 1.")
        limits[field] = value
    share = entry.get("window_share")
    if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1):
        raise AccountsFileError(
            f"{label}: window_share must be a number above 0 and at most 1 (0.25: a quarter of each "
            "account's 5-hour window)."
        )
    limits["window_share"] = None if share is None else float(share)
    return ClientKey(
        digest.lower(),
        Caller(
            name,
            tuple(dict.fromkeys(chosen)),
            tuple(m.strip() for m in models) if models is not None else None,
            **limits,
        ),
    )
