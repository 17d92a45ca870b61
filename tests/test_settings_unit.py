"""Settings: names fixed by the issues, the older aliases, and .env.example kept complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from claude_cli_bridge.run.server import StartupError, check_binding
from claude_cli_bridge.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def env_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias.choices[0] if alias is not None else name.upper())
    return names


def test_env_example_lists_every_setting_with_a_description():
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", text, flags=re.M))
    assert listed == env_names()
    for name in listed:
        assert re.search(rf"^# .+\n{name}=", text, flags=re.M), f"{name} has no description line"


def test_env_example_as_a_dotenv_gives_the_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in env_names():
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    from_file = Settings()
    (tmp_path / ".env").unlink()
    assert from_file.model_dump() == Settings().model_dump()


def test_fixed_names_and_defaults(monkeypatch):
    for name in ("HOST", "PORT", "OLLAMA_PORT", "SERVER_HOST", "SERVER_PORT", "BRIDGE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert (settings.host, settings.port, settings.ollama_port) == ("127.0.0.1", 8000, 22434)
    assert {"HOST", "PORT", "OLLAMA_PORT", "CLAUDE_CLI_PATH", "BRIDGE_API_KEY"} <= env_names()


def test_older_server_host_and_port_names_are_accepted(monkeypatch):
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.setenv("SERVER_HOST", "127.0.0.2")
    monkeypatch.setenv("SERVER_PORT", "9100")
    settings = Settings(_env_file=None)
    assert (settings.host, settings.port) == ("127.0.0.2", 9100)


@pytest.mark.parametrize(
    "host, key, allow, refused",
    [
        ("127.0.0.1", "", False, False),
        ("::1", "", False, False),
        ("localhost", "", False, False),
        ("0.0.0.0", "", False, True),
        ("0.0.0.0", "k1", False, False),
        ("0.0.0.0", "", True, False),
    ],
)
def test_public_binding_needs_a_key(host, key, allow, refused):
    settings = Settings(_env_file=None, host=host, bridge_api_key=key, allow_public_bind=allow)
    if refused:
        with pytest.raises(StartupError, match="BRIDGE_API_KEY"):
            check_binding(settings)
    else:
        check_binding(settings)


def test_env_example_is_generated_from_the_settings_class():
    from claude_cli_bridge.settings import env_example

    assert (ROOT / ".env.example").read_text() == env_example(), "run: python -m claude_cli_bridge.settings"


def test_pool_limits_defaults_are_the_settings_defaults():
    from claude_cli_bridge.engine.bridge import pool_limits
    from claude_cli_bridge.pool import PoolLimits

    assert pool_limits(Settings(_env_file=None)) == PoolLimits()


def test_keys_of_the_accounts_file_allow_a_public_bind():
    from claude_cli_bridge.run.server import StartupError, check_binding

    settings = Settings(_env_file=None, host="0.0.0.0")
    with pytest.raises(StartupError, match="without keys"):
        check_binding(settings)
    check_binding(settings, file_keys=2)
