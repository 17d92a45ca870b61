"""Launching: what a CLI process is given on disk, and that a failed launch leaves nothing."""

from __future__ import annotations

import json
import os

import pytest

from claude_cli_bridge.cli.launch import Launcher, LaunchFiles, WorkDirUnusable, build_argv, prepare_work_dir
from claude_cli_bridge.cli.profile import Profile
from claude_cli_bridge.core.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
from claude_cli_bridge.core.turn import ToolSpec

pytestmark = pytest.mark.unit


def launcher(tmp_path, cli="/no/such/claude", **env):
    return Launcher(cli, tmp_path / "state", {"PATH": "/bin", **env}, tmp_path / "work")


TOOLS = Profile.tools_of((ToolSpec("lookup", "", {"type": "object"}),))
HISTORY = (
    Message("user", (TextBlock("q"),)),
    Message("assistant", (ToolUseBlock("t1", "lookup", "{}"),)),
    Message("user", (ToolResultBlock("t1", (TextBlock("r"),)), TextBlock("beside"))),
)


async def test_a_failed_launch_removes_every_file_it_wrote(tmp_path):
    made = launcher(tmp_path)
    made.prepare()
    with pytest.raises(FileNotFoundError):
        await made(Profile(model="sonnet", system="S" * 10, tools_json=TOOLS), HISTORY)
    assert [p.name for p in (tmp_path / "state").iterdir()] == []  # no transcript, config or tmp dir left
    assert list((tmp_path / "work").iterdir()) == []


def test_the_launch_files_carry_the_system_prompt_settings_and_transcript(tmp_path):
    made = launcher(tmp_path)
    made.prepare()
    private = tmp_path / "state" / "p-x"
    argv, env = made._write_files(private, Profile(model="sonnet", system="be brief", tools_json=TOOLS), HISTORY)
    assert (private / "system-prompt.txt").read_text() == "be brief"
    assert argv[argv.index("--system-prompt-file") + 1] == str(private / "system-prompt.txt")
    settings = json.loads((private / "settings.json").read_text())
    assert "Read" in settings["permissions"]["deny"] and "Bash" in settings["permissions"]["deny"]
    assert settings["hooks"]["PreToolUse"]  # the deferring hook, in the same settings file
    records = [json.loads(line) for line in (private / "transcript.jsonl").read_text().splitlines()]
    assert records[-2]["message"]["content"] == [{"type": "text", "text": "beside"}]  # not an env var
    assert records[-1]["type"] == "attachment"
    assert "CLAUDE_CODE_RESUME_PROMPT" not in env and env["TMPDIR"] == str(private / "tmp")


def test_a_login_from_the_environment_gets_a_private_cli_configuration(tmp_path):
    keyed = launcher(tmp_path, CLAUDE_CODE_OAUTH_TOKEN="t", CLAUDE_CONFIG_DIR="/home/me/.claude")
    assert keyed.private_config and keyed.env_of("default")["CLAUDE_CONFIG_DIR"] == str(
        tmp_path / "state" / "cli-config"
    )
    assert not launcher(tmp_path, CLAUDE_CONFIG_DIR="/home/me/.claude").private_config


def test_the_working_directory_must_be_a_private_directory_of_ours(tmp_path):
    prepare_work_dir(tmp_path / "work")
    assert (tmp_path / "work").stat().st_mode & 0o777 == 0o700
    (tmp_path / "target").mkdir()
    os.symlink(tmp_path / "target", tmp_path / "link")
    with pytest.raises(WorkDirUnusable, match="symlink"):
        prepare_work_dir(tmp_path / "link")


@pytest.mark.parametrize(
    "fallback, model, expected",
    [
        ("", "sonnet", None),
        ("haiku", "sonnet", "haiku"),
        ("sonnet", "sonnet", None),
        ("haiku,opus", "sonnet", "haiku,opus"),
    ],
)
def test_the_fallback_model_is_an_operator_flag_left_out_when_it_is_the_model_itself(fallback, model, expected):
    argv = build_argv("claude", Profile(model=model), LaunchFiles(), fallback)
    if expected is None:
        assert "--fallback-model" not in argv
    else:
        assert argv[argv.index("--fallback-model") + 1] == expected
