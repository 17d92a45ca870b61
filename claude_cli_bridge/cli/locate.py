"""Finding the claude binary: CLAUDE_CLI_PATH, then `claude` on PATH, then a bundled one.

The bundled one is the CLI shipped inside the `claude-agent-sdk` wheel, if installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .version import parse_version

INSTALL_HINT = (
    "Install it with `npm install -g @anthropic-ai/claude-code` (or `pip install claude-agent-sdk`, "
    "which bundles it), log in once by running `claude`, or set CLAUDE_CLI_PATH to the binary."
)


class CliMissing(RuntimeError):
    """No usable claude binary: ``problem`` says what is wrong, ``fix`` how to install one."""

    def __init__(self, problem: str, fix: str = INSTALL_HINT):
        super().__init__(f"{problem} {fix}")
        self.problem = problem
        self.fix = fix


def _bundled_cli() -> str | None:
    try:
        import claude_agent_sdk
    except Exception:
        return None
    candidate = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def find_cli(configured: str = "") -> str:
    """Return the CLI's absolute path or raise CliMissing."""
    if configured:
        path = shutil.which(configured) or configured
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise CliMissing(f"CLAUDE_CLI_PATH={configured!r} is not an executable file.")
        return os.path.abspath(path)
    found = shutil.which("claude") or _bundled_cli()
    if not found:
        raise CliMissing("The Claude Code CLI (`claude`) was not found.")
    return os.path.abspath(found)


def shadowed_bundle(found: str, found_version: str) -> str | None:
    """A note when the `claude` found on PATH is older than the one the `claude-agent-sdk`
    wheel bundles (users rarely know which one runs); None otherwise."""
    bundled = _bundled_cli()
    if bundled is None or os.path.abspath(bundled) == os.path.abspath(found):
        return None
    bundled_version = cli_version(bundled)
    old, new = parse_version(found_version), parse_version(bundled_version)
    if old is not None and new is not None and old < new:
        return (
            f"`claude` on PATH ({found}, {found_version}) is older than the CLI bundled with claude-agent-sdk "
            f"({bundled}, {bundled_version}); the PATH one is used. Upgrade it, or set CLAUDE_CLI_PATH={bundled}."
        )
    return None


def cli_version(path: str, timeout: float = 60.0, attempts: int = 2) -> str:
    """The CLI's ``--version`` output (e.g. '2.1.332 (Claude Code)'); empty if it cannot be read.

    A first run can be slow (a cold disk, a security scanner): a generous limit, then one retry.
    """
    for _ in range(attempts):
        try:
            result = subprocess.run(
                [path, "--version"], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            continue
        except OSError:
            return ""
        return result.stdout.strip()
    return ""


@dataclass(frozen=True)
class LoginStatus:
    """What ``claude auth status --json`` says (docs/cli.md "Login"): ``loggedIn``,
    ``authMethod``, ``subscriptionType``, ``configDirectory``, and the account's e-mail
    address (from the answer, else the CLI's ``.claude.json``)."""

    logged_in: bool
    method: str | None = None
    subscription: str | None = None
    config_dir: str | None = None
    email: str | None = None


class LoginUnknown(RuntimeError):
    """``claude auth status`` gave no answer; the message names why (the exception's type)."""


def login_status(path: str, env: dict[str, str], timeout: float = 60) -> LoginStatus:
    """The CLI's own login state, without a model call; raises LoginUnknown."""
    try:
        result = subprocess.run(
            [path, "auth", "status", "--json"],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        status = json.loads(result.stdout or "{}")
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        raise LoginUnknown(type(exc).__name__) from None
    if not isinstance(status, dict) or not status.get("loggedIn"):
        return LoginStatus(False)
    config_dir = status.get("configDirectory") or None
    return LoginStatus(
        True,
        method=status.get("authMethod") or None,
        subscription=status.get("subscriptionType") or None,
        config_dir=config_dir,
        email=status.get("email") or _config_email(config_dir),
    )


def _config_email(config_dir: str | None) -> str | None:
    """``oauthAccount.emailAddress`` from the CLI's ``.claude.json`` (where the CLI reads it)."""
    candidates = [Path(config_dir) / ".claude.json"] if config_dir else []
    candidates.append(Path.home() / ".claude.json")
    for candidate in candidates:
        try:
            account = json.loads(candidate.read_text(encoding="utf-8")).get("oauthAccount") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(account, dict) and account.get("emailAddress"):
            return str(account["emailAddress"])
    return None
