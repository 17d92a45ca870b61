"""Finding the claude binary: CLAUDE_CLI_PATH, then `claude` on PATH, then a bundled one.

The bundled one is the CLI shipped inside the `claude-agent-sdk` wheel, if installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

INSTALL_HINT = (
    "Install it with `npm install -g @anthropic-ai/claude-code` (or `pip install claude-agent-sdk`, "
    "which bundles it), log in once by running `claude`, or set CLAUDE_CLI_PATH to the binary."
)


class CliMissing(RuntimeError):
    """No usable claude binary; the message says how to install one."""


def _bundled_cli() -> str | None:
    try:
        import claude_agent_sdk  # type: ignore[import-not-found]
    except Exception:
        return None
    candidate = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def find_cli(configured: str = "") -> str:
    """Return the CLI's path or raise CliMissing."""
    if configured:
        path = shutil.which(configured) or configured
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise CliMissing(f"CLAUDE_CLI_PATH={configured!r} is not an executable file. {INSTALL_HINT}")
        return os.path.abspath(path)
    found = shutil.which("claude") or _bundled_cli()
    if not found:
        raise CliMissing(f"The Claude Code CLI (`claude`) was not found. {INSTALL_HINT}")
    return found


def cli_version(path: str, timeout: float = 20.0) -> str:
    """The CLI's version string, e.g. '2.1.328'; empty if it cannot be read."""
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.strip().split(" ")[0] if out.strip() else ""
