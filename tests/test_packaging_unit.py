"""Packaging, as declared: requirements.txt equals the package's dependencies, and the console
script. (test_packaging_e2e.py installs the package into a fresh venv.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_requirements_txt_equals_the_package_dependencies():
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert [line for line in lines if line and not line.startswith("#")] == pyproject()["project"]["dependencies"]


def test_the_console_script_is_declared():
    assert pyproject()["project"]["scripts"] == {"claude-cli-bridge": "claude_cli_bridge.run.command:console_script"}
