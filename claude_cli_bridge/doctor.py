"""``doctor``: one line per check, pass or fail, each failure with its fix; exit non-zero on any.

Checks run in order and later ones are skipped when an earlier one they need failed (no CLI,
no probes). Nothing here spends a model call: the probes use a loopback stand-in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from .cli.launch import WorkDirUnusable, prepare_work_dir
from .cli.locate import CliMissing, cli_version, find_cli, shadowed_bundle
from .cli.probe import FATAL, FEATURES, run_probes
from .cli.version import check_range, dotted, parse_version
from .settings import Settings


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # passes, with something to know


def run_doctor(settings: Settings, out: Callable[[str], None] = print) -> int:
    checks: list[Check] = []

    def report(check: Check) -> None:
        checks.append(check)
        mark = "ok  " if check.ok and not check.warning else ("warn" if check.ok else "FAIL")
        out(f"[{mark}] {check.name}: {check.detail}")

    try:
        path = find_cli(settings.claude_cli_path)
    except CliMissing as exc:
        report(Check("CLI", False, str(exc)))
        return 1
    report(Check("CLI", True, path))
    raw = cli_version(path)
    version = parse_version(raw)
    verdict = check_range(version, raw)
    report(Check("CLI version", verdict.verdict != "too_old", verdict.message, warning=verdict.verdict == "newer"))
    if version is not None and not settings.claude_cli_path:
        note = shadowed_bundle(path, dotted(version))
        if note:
            report(Check("CLI on PATH", True, note, warning=True))
    try:
        prepare_work_dir(settings.cli_work_dir)
        report(Check("working directory", True, f"{settings.cli_work_dir} (empty, private)"))
    except (WorkDirUnusable, OSError) as exc:
        report(Check("working directory", False, f"{exc} Set CLI_WORK_DIR to a directory of your own."))
        return 1
    if verdict.verdict != "too_old":
        probes = asyncio.run(run_probes(path, dotted(version or (0, 0, 0)), settings.cli_work_dir))
        for name, state in probes.states.items():
            if state.ok:
                report(Check(f"feature {name}", True, state.detail))
            else:
                consequence = "the server refuses to start" if name in FATAL else "requests that need it are refused"
                report(Check(f"feature {name}", False, f"{FEATURES[name]}: {state.detail} ({consequence})"))
    return 0 if all(check.ok for check in checks) else 1
