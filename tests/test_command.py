"""The command line: subcommands, a flag for every setting, precedence over the environment."""

from __future__ import annotations

import pytest

from claude_cli_bridge.command import build_parser, env_name, flag_name, main, settings_from
from claude_cli_bridge.settings import Settings


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


def test_the_readme_table_of_settings_is_generated_from_the_settings_class():
    from pathlib import Path

    from claude_cli_bridge.command import settings_table

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert settings_table() in readme, "run: scripts/settings-docs"
