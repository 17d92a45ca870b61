"""Which Claude Code CLI versions the bridge knows, and what each can do.

``OLDEST_SUPPORTED``: below it the bridge refuses to start (``doctor`` fails) naming the
installed version, the minimum and the upgrade command. ``NEWEST_TESTED`` is the version the
suite runs against (``scripts/cli-version``; a test keeps the two equal): newer versions
start with a warning naming both. Between the two, the feature probes (``cli.probe``) decide
what is switched on; ``FEATURE_MINIMUMS`` only words the refusal ("client tools need Claude
Code >= X; this is Y"). The figures come from running the probes against published
versions (docs/operating.md, "CLI versions").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Version = tuple[int, int, int]

OLDEST_SUPPORTED: Version = (2, 1, 277)  # scripts/cli-floor; CI probes it
NEWEST_TESTED: Version = (2, 1, 332)  # scripts/cli-version; CI runs the suite on it
UPGRADE_COMMAND = "npm install -g @anthropic-ai/claude-code@latest"

# The oldest version each feature was seen working in, by the probes (docs/operating.md, "CLI versions"):
# caller text is delivered uninterpreted from 2.1.250 (client_composed), deferred tool results
# are matched from 2.1.277; the others work from 2.1.204 or earlier.
FEATURE_MINIMUMS: dict[str, Version] = {
    "basic": (2, 1, 204),
    "caller_text": (2, 1, 250),
    "single_call": (2, 1, 204),
    "transcripts": (2, 1, 204),
    "client_tools": (2, 1, 277),
    "structured_output": (2, 1, 204),
    "error_status": (2, 1, 204),
    "workers": (2, 1, 277),
}

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> Version | None:
    """``"2.1.332 (Claude Code)"`` -> ``(2, 1, 332)``; None if there is no version in it."""
    match = _VERSION.search(text or "")
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def dotted(version: Version) -> str:
    return ".".join(str(part) for part in version)


@dataclass(frozen=True)
class RangeVerdict:
    """Where a version stands: ``ok``, ``too_old`` (refused) or ``newer`` (a warning)."""

    verdict: str
    message: str


def check_range(version: Version | None, raw: str = "") -> RangeVerdict:
    if version is None:
        return RangeVerdict(
            "too_old", f"Cannot read the Claude CLI's version from {raw!r}; is it a working install? {UPGRADE_COMMAND}"
        )
    if version < OLDEST_SUPPORTED:
        return RangeVerdict(
            "too_old",
            f"Claude Code {dotted(version)} is too old: this bridge needs {dotted(OLDEST_SUPPORTED)} or newer "
            f"(tested up to {dotted(NEWEST_TESTED)}). Upgrade with `{UPGRADE_COMMAND}` or point CLAUDE_CLI_PATH "
            "at a newer binary.",
        )
    if version > NEWEST_TESTED:
        return RangeVerdict(
            "newer",
            f"Claude Code {dotted(version)} is newer than the newest version this bridge was tested with "
            f"({dotted(NEWEST_TESTED)}); the feature probes decide what is used.",
        )
    return RangeVerdict("ok", f"Claude Code {dotted(version)} is within the tested range.")
