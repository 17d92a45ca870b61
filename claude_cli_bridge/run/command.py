"""The ``claude-cli-bridge`` command (and ``python -m claude_cli_bridge``): subcommands and flags.

``serve`` (the default), ``doctor``, ``models``, ``usage``, ``accounts`` and ``keys add NAME``.
Every setting of ``Settings`` is also a flag, generated here from the class itself (name,
description, default), so ``--help`` lists them all and cannot drift from the settings.
Precedence: flags, then the environment, then ``.env``, then the defaults (flags are passed
to ``Settings`` as init arguments, which pydantic-settings ranks first).

Why argparse rather than pydantic-settings' own CLI source: the older names of some settings
(``SERVER_HOST``, ``SERVER_PORT``) are alias choices that would become flags of their own, and
booleans, JSON maps and subcommands need the exact spelling documented in docs/configuration.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, ValidationError

from .. import __version__
from ..settings import Settings

COMMANDS = ("serve", "doctor", "models", "usage", "accounts", "keys")


def env_name(name: str) -> str:
    """The environment variable a field is read from (its first alias, else its name)."""
    alias = Settings.model_fields[name].validation_alias
    return alias.choices[0] if isinstance(alias, AliasChoices) else name.upper()  # type: ignore[return-value]


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default_text(name: str) -> str:
    default = Settings.model_fields[name].get_default(call_default_factory=True)
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, dict):
        return json.dumps(default, separators=(",", ":"))
    text = str(default)
    home = str(Path.home())
    return "~" + text[len(home) :] if text.startswith(home) else (text or '""')


def _json_map(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting. Defaults are suppressed: only flags actually given reach Settings,
    so the environment and .env still apply to everything else."""
    group = parser.add_argument_group("settings (each also an environment variable, shown in brackets)")
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("%", "%%")
        help_text = f"{description} [{env_name(name)}; default: {_default_text(name).replace('%', '%%')}]"
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
        if field.annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field.annotation is not None and getattr(field.annotation, "__origin__", None) is dict:
            kwargs.update(type=_json_map, metavar="JSON")
        else:
            kwargs["metavar"] = env_name(name)
        group.add_argument(flag_name(name), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="claude-cli-bridge",
        usage="%(prog)s [COMMAND] [--setting VALUE ...]",
        description=(
            "OpenAI- and Ollama-compatible APIs answered by the Claude Code CLI of your subscription. "
            "Without a command, serve."
        ),
        epilog="Run `claude-cli-bridge COMMAND --help` for a command's own options.",
    )
    parser.add_argument("--version", action="version", version=f"claude-cli-bridge {__version__}")
    add_setting_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    helps = {
        "serve": "start both listeners (the default)",
        "doctor": "check the installation: one line per check, each failure with its fix",
        "models": "list the model names this server answers to",
        "usage": "summarise the usage ledger by day and model (or key, account)",
        "accounts": "list the accounts of ACCOUNTS_FILE with their login state and last windows",
        "keys": "`keys add NAME`: make a new client key, print it once and the line for ACCOUNTS_FILE",
    }
    usages = {
        "usage": " [--days N] [--json] [--by model|key|account]",
        "keys": " add NAME",
    }
    for name in COMMANDS:
        sub = commands.add_parser(
            name,
            prog=f"claude-cli-bridge {name}",
            help=helps[name],
            description=helps[name].capitalize() + ".",
            usage=f"%(prog)s{usages.get(name, '')} [--setting VALUE ...]",
        )
        if name == "usage":
            sub.add_argument("--days", type=int, default=7, help="how many days back, today included (default 7)")
            sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
            sub.add_argument("--by", choices=("model", "key", "account"), default="model", help="group by (model)")
        if name == "keys":
            sub.add_argument("action", choices=("add",), help="add: make a new key")
            sub.add_argument("key_name", metavar="NAME", help="the key's name (letters, digits, _ . -)")
        add_setting_flags(sub)
    return parser


def settings_from(namespace: argparse.Namespace) -> Settings:
    given = {name: value for name, value in vars(namespace).items() if name in Settings.model_fields}
    return Settings(**given)


def describe_settings_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:3]:
        field = str(error["loc"][0]) if error["loc"] else "?"
        if field in Settings.model_fields:
            where = f"{flag_name(field)} / {env_name(field)}"
        else:
            where = field
        problems.append(f"{where}: {error['msg']}")
    return "invalid setting: " + "; ".join(problems)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        print(f"claude-cli-bridge: {describe_settings_error(exc)}", file=sys.stderr)
        return 2
    command = args.command or "serve"
    runners: dict[str, Callable[[], int]] = {
        "serve": lambda: _serve(settings),
        "doctor": lambda: _doctor(settings),
        "models": lambda: _models(settings),
        "usage": lambda: _usage(settings, args.days, args.json, args.by),
        "accounts": lambda: _accounts(settings),
        "keys": lambda: _keys_add(args.key_name),
    }
    return runners[command]()


def _serve(settings: Settings) -> int:
    from .server import run

    return run(settings)


def _doctor(settings: Settings) -> int:
    from .doctor import run_doctor

    return run_doctor(settings)


def _models(settings: Settings) -> int:
    from ..core.served import served_models

    served = served_models(settings.model_alias_map(), settings.embed_alias_list())
    print("Chat models (any claude-* id also passes through to the CLI):")
    for model in served:
        if model.info is not None:
            default = "  (default)" if model.id == settings.default_model else ""
            print(f"  {model.id:<24} {model.info.family:<8} context {model.info.context_length:>9,}{default}")
        elif model.kind == "alias":
            print(f"  {model.id:<24} -> {model.target} (MODEL_ALIASES)")
    print(f"Embedding models (all served by {settings.embed_model_path or settings.embed_model}):")
    for model in served:
        if model.kind == "embedding":
            print(f"  {model.id}")
    return 0


def _usage(settings: Settings, days: int, as_json: bool, by: str = "model") -> int:
    from ..observe.ledger import print_summary

    code = print_summary(settings.data_dir, days, as_json, by=by)
    if code == 0 and by == "key" and not as_json and settings.accounts_file:
        from ..accounts.report import print_budgets

        print_budgets(settings)
    return code


def _accounts(settings: Settings) -> int:
    from ..accounts.report import print_accounts

    return print_accounts(settings)


def _keys_add(name: str) -> int:
    from ..accounts.report import print_new_key

    return print_new_key(name)


def settings_table() -> str:
    """docs/configuration.md's table of settings (flag, environment variable, default, description),
    generated from ``Settings``; ``scripts/settings-docs`` writes it and a test compares."""
    rows = ["| Flag | Environment | Default | What it does |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = _default_text(name)
        if len(default) > 40:
            default = default[:37] + "..."
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{flag_name(name)}` | `{env_name(name)}` | `{default}` | {description} |")
    return "\n".join(rows) + "\n"


def console_script() -> None:
    """The ``claude-cli-bridge`` console script's entry point."""
    sys.exit(main())
