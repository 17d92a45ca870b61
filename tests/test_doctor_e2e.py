"""doctor: one line per check, each failure with its fix, non-zero on any failure; the login is
checked without a model call (the environment's, or `claude auth status`)."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
from harness import find_test_cli, free_port, run_module

from claude_cli_bridge.accounts.windows import SubscriptionWindows
from claude_cli_bridge.cli.wire import rate_limit_info

pytestmark = pytest.mark.e2e

LOGINS = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CONFIG_DIR")


def doctor(tmp_path, *args, **env):
    base = {key: value for key, value in os.environ.items() if key not in LOGINS}
    base.update(
        PORT=str(free_port()),
        OLLAMA_PORT=str(free_port()),
        DATA_DIR=str(tmp_path / "data"),
        CLI_WORK_DIR=str(tmp_path / "work"),
        PROBE_FEATURES="false",
        EMBED_CACHE_DIR=str(tmp_path / "models"),
        HOME=str(tmp_path / "home"),  # no ~/.claude.json of the machine's user
    )
    base.update(env)
    result = run_module("doctor", *args, base_env=base, timeout=180)
    return result.returncode, result.stdout.splitlines()


def line(lines: list[str], name: str) -> str:
    [found] = [text for text in lines if text[7:].startswith(name + ":")]
    return found


def test_without_a_cli_every_other_check_still_runs_and_the_failure_says_how_to_install(tmp_path):
    code, lines = doctor(tmp_path, CLAUDE_CLI_PATH=str(tmp_path / "no-claude"))
    assert code == 1
    assert line(lines, "CLI").startswith("[FAIL]") and "Fix: Install it with `npm install -g" in line(lines, "CLI")
    for name in ("Python", "working directory", "data directory", "OpenAI port", "Ollama port", "keys and binding"):
        assert line(lines, name).startswith("[ok  ]"), lines
    assert lines[-1] == "2 problems found."  # the CLI, and the login that needs it


def test_with_the_real_cli_and_a_login_in_the_environment_everything_passes(tmp_path, fake):
    code, lines = doctor(
        tmp_path,
        "--probe-features",
        CLAUDE_CLI_PATH=find_test_cli(),
        ANTHROPIC_API_KEY="sk-ant-x",
        ANTHROPIC_BASE_URL=fake.base_url,
    )
    assert code == 0, "\n".join(lines)
    assert "from the environment (ANTHROPIC_API_KEY)" in line(lines, "login")
    assert line(lines, "feature caller_text").startswith("[ok  ]")
    assert lines[-1] == "Everything checked is fine."
    assert not fake.received, "doctor spends no model call"


def test_not_logged_in_fails_with_the_fix(tmp_path):
    code, lines = doctor(tmp_path, CLAUDE_CLI_PATH=find_test_cli(), CLAUDE_CONFIG_DIR=str(tmp_path / "empty-config"))
    assert code == 1
    login = line(lines, "login")
    assert login.startswith("[FAIL]") and "not logged in" in login
    assert "claude setup-token" in login and "CLAUDE_CODE_OAUTH_TOKEN" in login


def test_a_config_dir_account_not_logged_in_names_its_own_directory_in_the_fix(tmp_path):
    work = tmp_path / "claude-work"
    work.mkdir()
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(f'[accounts.work]\nconfig_dir = "{work}"\n')
    code, lines = doctor(tmp_path, CLAUDE_CLI_PATH=find_test_cli(), ACCOUNTS_FILE=str(accounts))
    assert code == 1
    login = line(lines, "account work")
    assert login.startswith("[FAIL]") and f"run `CLAUDE_CONFIG_DIR={work} claude` once" in login


def test_a_login_in_the_users_config_warns_about_the_e_mail_address(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    # A stored subscription login as the CLI keeps it (never used: no model call is made).
    (config / ".credentials.json").write_text(
        json.dumps(
            {
                "claudeAiOauth": {
                    "accessToken": "sk-ant-oat01-test",
                    "refreshToken": "sk-ant-ort01-test",
                    "expiresAt": 4102444800000,
                    "scopes": ["user:inference"],
                    "subscriptionType": "max",
                }
            }
        )
    )
    (config / ".claude.json").write_text(json.dumps({"oauthAccount": {"emailAddress": "someone@example.com"}}))
    code, lines = doctor(
        tmp_path,
        CLAUDE_CLI_PATH=find_test_cli(),
        CLAUDE_CONFIG_DIR=str(config),
        ANTHROPIC_BASE_URL="http://127.0.0.1:9",
    )
    login = line(lines, "login")
    assert login.startswith("[warn]"), login
    assert "someone@example.com" in login and "claude setup-token" in login
    assert code == 0


def test_a_taken_port_a_public_bind_and_the_last_windows(tmp_path):
    windows = SubscriptionWindows(tmp_path / "data")
    now = int(time.time())
    windows.update(
        rate_limit_info(
            {"status": "allowed", "rateLimitType": "five_hour", "resetsAt": now + 3600,
             "unifiedWindows": {"five_hour": {"utilization": 0.42, "resetsAt": now + 3600}}}
        )
    )  # fmt: skip
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, lines = doctor(tmp_path, "--port", str(port), CLAUDE_CLI_PATH=str(tmp_path / "none"))
    assert code == 1
    assert f"127.0.0.1:{port} is in use" in line(lines, "OpenAI port") and "set PORT (or --port)" in line(
        lines, "OpenAI port"
    )
    assert any("5-hour: 42% used" in text for text in lines)

    code, lines = doctor(tmp_path, "--host", "0.0.0.0", CLAUDE_CLI_PATH=str(tmp_path / "none"))
    assert line(lines, "keys and binding").startswith("[FAIL]") and "BRIDGE_API_KEY" in line(lines, "keys and binding")
    code, lines = doctor(
        tmp_path, "--host", "0.0.0.0", "--bridge-api-key", "short", CLAUDE_CLI_PATH=str(tmp_path / "none")
    )
    assert line(lines, "keys and binding").startswith("[warn]") and "shorter than 16" in line(lines, "keys and binding")


def test_doctor_beside_a_running_bridge_warns_that_its_port_is_that_bridges(tmp_path, bridge):
    """`podman exec NAME claude-cli-bridge doctor`: the ports are the running bridge's, which
    is no failure of the configuration."""
    _, lines = doctor(tmp_path, CLAUDE_CLI_PATH=find_test_cli(), PORT=str(bridge.port))
    port = line(lines, "OpenAI port")
    assert port.startswith("[warn]") and "a claude-cli-bridge is running there" in port
