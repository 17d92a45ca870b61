"""The command line: subcommands, a flag for every setting, precedence over the environment."""

from __future__ import annotations

import pytest

from claude_cli_bridge.run.command import build_parser, env_name, flag_name, main, settings_from
from claude_cli_bridge.settings import Settings

pytestmark = pytest.mark.unit


def test_help_lists_every_setting_with_its_description_and_default():
    text = " ".join(build_parser().format_help().split())  # argparse wraps lines
    for name, field in Settings.model_fields.items():
        assert flag_name(name) in text
        assert f"[{env_name(name)}; default:" in text
        assert " ".join((field.description or "").split())[:30] in text


@pytest.mark.parametrize(
    "argv, command",
    [([], None), (["serve"], "serve"), (["doctor"], "doctor"), (["models"], "models"), (["usage"], "usage")],
)
def test_subcommands(argv, command):
    assert build_parser().parse_args(argv).command == command


def test_flags_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("PORT", "9100")
    monkeypatch.setenv("PROBE_FEATURES", "true")
    monkeypatch.setenv("DEFAULT_MODEL", "haiku")
    args = build_parser().parse_args(
        ["--port", "9200", "doctor", "--no-probe-features", "--legacy-models", '{"x":"opus"}']
    )
    settings = settings_from(args)
    assert (settings.port, settings.probe_features, settings.legacy_models) == (9200, False, {"x": "opus"})
    assert settings.default_model == "haiku"  # not given as a flag: the environment still applies


def test_an_invalid_flag_value_is_one_line_naming_flag_and_variable(capsys):
    assert main(["--port", "eighty", "models"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--port / PORT" in err


def test_models_lists_the_catalog(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "sonnet" in out and "text-embedding-3-small" in out


def test_the_table_of_settings_in_the_docs_is_generated_from_the_settings_class():
    from pathlib import Path

    from claude_cli_bridge.run.command import settings_table

    page = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    assert settings_table() in page, "run: scripts/settings-docs"


def test_keys_add_prints_a_new_key_once_and_the_entry_with_its_hash(capsys):
    import hashlib
    import tomllib

    assert main(["keys", "add", "alice"]) == 0
    out = capsys.readouterr().out
    key = next(line.strip() for line in out.splitlines() if line.strip().startswith("ccb-"))
    entry = tomllib.loads(out[out.index("[keys.alice]") :])
    assert entry["keys"]["alice"]["key_sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert main(["keys", "add", "not a name"]) == 2


def test_accounts_lists_each_account_and_usage_groups_by_key_or_account(tmp_path, monkeypatch, capsys):
    import json

    (tmp_path / "accounts.toml").write_text('[accounts.work]\noauth_token_env = "WORK_TOKEN"\n')
    monkeypatch.setenv("WORK_TOKEN", "sk-ant-oat01-SECRET")
    assert main(["accounts", "--accounts-file", str(tmp_path / "accounts.toml"), "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "work: OAuth token from $WORK_TOKEN" in out and "SECRET" not in out
    monkeypatch.delenv("WORK_TOKEN")
    assert main(["accounts", "--accounts-file", str(tmp_path / "accounts.toml")]) == 2
    assert "WORK_TOKEN" in capsys.readouterr().out
    row = {"time": "2026-12-01T10:00:00Z", "model": "sonnet", "key_label": "alice", "account": "work",
           "status": 200, "input_tokens": 5, "output_tokens": 2}  # fmt: skip
    from datetime import UTC, datetime

    day = datetime.now(UTC).strftime("%Y-%m-%d")
    row["time"] = f"{day}T10:00:00Z"
    (tmp_path / f"usage-{day}.jsonl").write_text(json.dumps(row) + "\n")
    for by, name in (("key", "alice"), ("account", "work"), ("model", "sonnet")):
        assert main(["usage", "--by", by, "--json", "--data-dir", str(tmp_path)]) == 0
        [summary] = json.loads(capsys.readouterr().out)
        assert summary[by] == name and summary["requests"] == 1 and summary["input_tokens"] == 5
    # With budgets in the accounts file, `usage --by key` shows each key's use against them.
    from claude_cli_bridge.accounts.keys import sha256_hex

    budget = f'\n[keys.alice]\nkey_sha256 = "{sha256_hex("k")}"\ntokens_per_day = 100\ntokens_per_week = 1000\n'
    (tmp_path / "accounts.toml").write_text('[accounts.work]\noauth_token_env = "WORK_TOKEN"\n' + budget)
    monkeypatch.setenv("WORK_TOKEN", "sk-ant-oat01-SECRET")
    args = ["usage", "--by", "key", "--data-dir", str(tmp_path), "--accounts-file", str(tmp_path / "accounts.toml")]
    assert main(args) == 0
    assert "alice: 7 of 100 today; 7 of 1,000 this week" in capsys.readouterr().out
    # A window_share: the key's part of the account's current 5-hour window, from the ledger.
    import time

    reset = int(time.time()) + 3600
    row.update(window_used=0.125, window_reset=reset)
    (tmp_path / f"usage-{day}.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "windows-work.json").write_text(
        json.dumps({"status": "allowed", "windows": {"five_hour": {"utilization": 0.4, "resets_at": reset}}})
    )
    (tmp_path / "accounts.toml").write_text(
        '[accounts.work]\noauth_token_env = "WORK_TOKEN"\n' + budget + "window_share = 0.25\n"
    )
    assert main(args) == 0
    assert "12.5% of work's 5-hour window (share 25%)" in capsys.readouterr().out
