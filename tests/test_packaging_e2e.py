"""Packaging: an install into a fresh venv has the console script, every setting and the
dashboard's assets. (test_packaging_unit.py checks what is declared.)"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from claude_cli_bridge.run.command import flag_name
from claude_cli_bridge.settings import Settings

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip install`` of a copy of the checkout into a fresh venv (dependencies from this
    interpreter's site-packages, so nothing but the build backend is downloaded)."""
    base = tmp_path_factory.mktemp("install")
    source = base / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "claude_cli_bridge", source / "claude_cli_bridge", ignore=shutil.ignore_patterns("__pycache__")
    )
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return venv


def test_the_installed_console_script_lists_every_setting(installed):
    result = subprocess.run(
        [str(installed / "bin" / "claude-cli-bridge"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for name in Settings.model_fields:
        assert flag_name(name) in result.stdout
    for command in ("serve", "doctor", "models", "usage"):
        assert command in result.stdout


def test_the_installed_package_ships_the_dashboard_assets(installed):
    code = (
        "import importlib.resources as r; d = r.files('claude_cli_bridge.dashboard') / 'static'; "
        "print(sorted(p.name for p in d.iterdir()))"
    )
    result = subprocess.run(
        [str(installed / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    assert {"index.html", "dashboard.js", "dashboard.css"} <= set(ast.literal_eval(result.stdout))
