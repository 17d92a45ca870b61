"""Each account's CLI environment: that account's login and no other's.

Every login variable the CLI reads (``CLAUDE_CODE_OAUTH_TOKEN``, ``ANTHROPIC_API_KEY``,
``ANTHROPIC_AUTH_TOKEN``, ``CLAUDE_CONFIG_DIR``), every variable any account of the file
names, and every variable holding an Anthropic credential (a value starting ``sk-ant-``: an
account added to the file later may name it, and the processes of the others must not have
carried it) is removed from the server's environment first; then the account's own login is put
in. An account whose login comes from a variable gets a private, empty CLI configuration
directory of its own (nothing of the user's ``~/.claude`` reaches it, in particular not the
account e-mail address the CLI would tell the model). The ``default`` account without a file
keeps the server's environment as it is, as before accounts existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .config import Account, AccountsConfig

#: The variables the CLI takes a login from (CLI 2.1.x; docs/cli.md).
LOGIN_VARIABLES = ("CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
#: How OAuth tokens (``sk-ant-oat01-``) and Console keys (``sk-ant-api03-``) begin.
CREDENTIAL_PREFIX = "sk-ant-"


def private_config_dir(state_dir: Path, account: Account) -> Path:
    """The account's own empty CLI configuration directory under the state directory."""
    return state_dir / ("cli-config" if account.kind == "environment" else f"cli-config-{account.name}")


def account_env(
    account: Account, config: AccountsConfig, environ: Mapping[str, str], state_dir: Path
) -> dict[str, str]:
    """The environment a CLI process of ``account`` starts from (before ``Profile.env``)."""
    if account.kind == "environment":
        env = dict(environ)
        if any(env.get(name) for name in LOGIN_VARIABLES):
            env["CLAUDE_CONFIG_DIR"] = str(private_config_dir(state_dir, account))
        return env
    credentials = {name for name, value in environ.items() if value.startswith(CREDENTIAL_PREFIX)}
    withheld = {*LOGIN_VARIABLES, "CLAUDE_CONFIG_DIR", *config.secret_variables, *credentials}
    env = {name: value for name, value in environ.items() if name not in withheld}
    if account.kind == "config_dir":
        env["CLAUDE_CONFIG_DIR"] = account.source
        return env
    secret = environ.get(account.source, "")
    env["CLAUDE_CODE_OAUTH_TOKEN" if account.kind == "oauth_token" else "ANTHROPIC_API_KEY"] = secret
    env["CLAUDE_CONFIG_DIR"] = str(private_config_dir(state_dir, account))
    return env
