"""Knowing the CLI, pure: the pinned versions are the range the code knows, versions are parsed
and placed in it, every feature has a description and a minimum, and the pool and the probes
build the same argv. (test_cli_versions_e2e.py runs the probes and stand-in CLIs.)"""

from __future__ import annotations

import pytest
from harness import ROOT

from claude_cli_bridge.cli.launch import Launcher, LaunchFiles, build_argv
from claude_cli_bridge.cli.probe import FEATURES
from claude_cli_bridge.cli.profile import Profile
from claude_cli_bridge.cli.version import NEWEST_TESTED, OLDEST_SUPPORTED, check_range, dotted, parse_version

pytestmark = pytest.mark.unit


def test_the_pinned_versions_are_the_range_the_code_knows():
    assert (ROOT / "scripts" / "cli-version").read_text().strip() == dotted(NEWEST_TESTED)
    assert (ROOT / "scripts" / "cli-floor").read_text().strip() == dotted(OLDEST_SUPPORTED)


@pytest.mark.parametrize(
    "raw, verdict",
    [("2.1.332 (Claude Code)", "ok"), ("2.1.277", "ok"), ("2.1.276 (Claude Code)", "too_old"), ("1.0.128 (Claude Code)", "too_old"),
     ("9.0.0 (Claude Code)", "newer"), ("garbage", "too_old")],
)  # fmt: skip
def test_versions_are_parsed_and_placed_in_the_range(raw, verdict):
    assert check_range(parse_version(raw), raw).verdict == verdict


def test_the_pool_and_the_probes_launch_the_same_argv(tmp_path):
    """One builder: the probes go through Launcher, which is what the pool launches with."""
    profile = Profile(model="haiku", system="s")
    launcher = Launcher("claude", tmp_path / "state", {}, tmp_path / "work")
    launcher.prepare()
    argv, _ = launcher._write_files(tmp_path / "state" / "p", profile, ())
    files = LaunchFiles(
        system_prompt=tmp_path / "state" / "p" / "system-prompt.txt",
        settings=tmp_path / "state" / "p" / "settings.json",
    )
    assert argv == build_argv("claude", profile, files)
    from claude_cli_bridge.cli import probe

    assert "Launcher" in probe.__dict__ and "build_argv" not in probe.__dict__  # the probes build no argv


def test_every_feature_has_a_description_and_a_minimum():
    from claude_cli_bridge.cli.version import FEATURE_MINIMUMS

    assert set(FEATURES) == set(FEATURE_MINIMUMS)
