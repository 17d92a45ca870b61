"""Where the first turn of a spare spends its time, against a later turn of the same process.

    python bench/bench_first_turn.py            # 10 timing runs and 3 debug-log runs per variant
    python bench/bench_first_turn.py --runs 4   # fewer
    python bench/bench_first_turn.py --profile  # and a profiled run per variant

A spare is a persistent ``claude -p --input-format stream-json`` process launched as the pool
launches it (``cli.launch.Launcher``: argv, environment, files, working directory), left to
go quiet, then given three turns written as the bridge writes them (``client_composed``),
against the fake Anthropic API in a child process that logs when each request arrives.
Two variants, interleaved run by run (the machine is shared and its load drifts):

- ``plain``: nothing is written before the first turn (how spares were launched before);
- ``initialize``: the SDK's ``initialize`` control request is written at launch, as the pool
  now does for new-conversation processes (``cli.wire.initialize_line``).

Timing runs (no debug logging) give, per turn: TTFT (turn written to first text delta),
the time to the request's arrival at the fake, the time from there to the first text delta
(the fake answers at once), and the CLI's CPU time for the turn (turn written to result
line) and after it (until quiet). Debug-log runs (``--debug-file``) split the same turns
into the CLI's own phases: input read to ``[engine] turn N start``, to ``[API REQUEST]``,
its ``first byte after`` figure, and when the CLI's ``startupWorkGate`` released the
start-up work it holds, and why. Cold runs write the turn at launch (a request waiting for a
new process). ``--profile`` adds one run per variant under the CLI runtime's sampling
profiler (``BUN_OPTIONS=--cpu-prof``): JavaScript samples per turn and where they fall.
Prints tables and writes bench/results/first_turn.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # bench/common.py also puts the repo root and tests/ on sys.path
    ARRIVALS_VAR,
    ROOT,
    DirectCli,
    FakeProcess,
    cpu_seconds,
    direct_launcher,
    marker,
    median,
    read_arrivals,
    user_turn,
)
from harness import find_test_cli

from claude_cli_bridge.cli.locate import cli_version
from claude_cli_bridge.cli.profile import Profile

SHORT = marker(5, 0)
VARIANTS = ("plain", "initialize")
TURNS = (1, 2, 3)
PROFILE = Profile(model="sonnet", system="You are the first-turn benchmark's assistant.")
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z) \[DEBUG\] (.*)$")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def cpu(pid: int) -> float:
    return cpu_seconds([pid]).get(pid, 0.0)


def quiet(pid: int, timeout: float = 30.0) -> None:
    """Until the process uses less than 15 ms of CPU in 0.3 s (a fresh CLI keeps working for
    seconds after it starts, even idle)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu(pid)
        time.sleep(0.3)
        if cpu(pid) - before <= 0.015:
            return


class Run:
    def __init__(self, home: Path, fake: FakeProcess, launcher, arrivals: Path):
        self.home, self.fake, self.launcher, self.arrivals = home, fake, launcher, arrivals

    def timing(self, variant: str) -> dict[str, Any]:
        """One spare, three turns; times in seconds."""
        direct = DirectCli(self.launcher, PROFILE, initialize=variant == "initialize")
        out: dict[str, Any] = {"variant": variant, "load": load()}
        try:
            quiet(direct.pid)
            out["boot_cpu"] = cpu(direct.pid)
            for turn in TURNS:
                seen = len(read_arrivals(self.arrivals))
                before = cpu(direct.pid)
                result = direct.turn(f"{SHORT} {variant} turn {turn}")
                at_result = cpu(direct.pid)
                quiet(direct.pid)
                arrived = read_arrivals(self.arrivals)[seen:]
                upstream = arrived[0]["t"] - result["sent_at"] if arrived else None
                out[f"turn{turn}"] = {
                    "ttft": result["ttft"],
                    "to_upstream": upstream,
                    "upstream_to_first_token": None if upstream is None else result["ttft"] - upstream,
                    "requests": len(arrived),
                    "cpu_turn": at_result - before,
                    "cpu_after": cpu(direct.pid) - at_result,
                    "error": result["error"],
                }
        finally:
            direct.stop()
        return out

    def cold(self, variant: str) -> dict[str, Any]:
        """A process given its turn at launch (a cold start for a waiting request): TTFT from
        the launch, and the CLI's CPU until the result line."""
        direct = DirectCli(self.launcher, PROFILE, initialize=variant == "initialize")
        try:
            direct.write(user_turn(f"{SHORT} {variant} cold"))
            result = direct.read_turn(direct.started)
            return {"variant": variant, "load": load(), "ttft": result["ttft"], "cpu": cpu(direct.pid)}
        finally:
            direct.stop()

    def profile(self, variant: str, directory: Path) -> dict[str, Any]:
        """A settled spare run under the CLI runtime's sampling profiler (``--cpu-prof`` through
        BUN_OPTIONS, 200 µs): JavaScript samples per turn and the functions they fall in."""
        directory.mkdir(parents=True, exist_ok=True)
        options = f"--cpu-prof --cpu-prof-dir={directory} --cpu-prof-interval=200"
        direct = DirectCli(
            self.launcher, PROFILE, initialize=variant == "initialize", extra_env={"BUN_OPTIONS": options}
        )
        windows: dict[int, tuple[float, float]] = {}
        try:
            quiet(direct.pid)
            for turn in TURNS:
                begin = time.time()
                result = direct.turn(f"{SHORT} {variant} turn {turn}")
                windows[turn] = (begin, begin + (result["total"] or 0.0))
                quiet(direct.pid)
        finally:
            direct.stop()  # the profile is written at exit
        found = sorted(directory.glob("*.cpuprofile"))
        if not found:
            return {"variant": variant, "error": "no profile written (this CLI build may not honour BUN_OPTIONS)"}
        return {"variant": variant, "load": load(), **profile_turns(json.loads(found[-1].read_text()), windows)}

    def phases(self, variant: str) -> dict[str, Any]:
        """One spare with --debug-file: the CLI's own timestamps of each turn's phases."""
        debug = self.home / f"debug-{variant}-{time.monotonic_ns()}.log"
        direct = DirectCli(
            self.launcher, PROFILE, initialize=variant == "initialize", extra_args=["--debug-file", str(debug)]
        )
        written: dict[int, float] = {}
        try:
            quiet(direct.pid)
            for turn in TURNS:
                written[turn] = time.time()
                direct.turn(f"{SHORT} {variant} turn {turn}")
                quiet(direct.pid)
        finally:
            direct.stop()
        return {"variant": variant, "load": load(), **parse_debug(debug.read_text(errors="replace"), written)}


def parse_debug(text: str, written: dict[int, float]) -> dict[str, Any]:
    """Phases per turn (seconds from the turn's stdin line) and the start-up gate's release."""
    events: list[tuple[float, str]] = []
    for line in text.splitlines():
        found = STAMP.match(line)
        if found:
            moment = datetime.fromisoformat(found.group(1).replace("Z", "+00:00")).timestamp()
            events.append((moment, found.group(2)))
    out: dict[str, Any] = {"gate": None}
    for moment, message in events:
        if "[startupWorkGate] open" in message:
            reason = re.search(r"open \(([^)]+)\)", message)
            tasks = message.split("held task(s): ")[-1] if "held task(s): " in message else ""
            turn_of = max((t for t, at in written.items() if at <= moment), default=0)
            out["gate"] = {
                "reason": reason.group(1) if reason else "?",
                "during_turn": turn_of,
                "tasks": tasks,
            }
    for turn, at in written.items():
        end = written.get(turn + 1, float("inf"))
        mine = [(m - at, msg) for m, msg in events if at <= m < end]

        def first(pattern: str, mine=mine) -> float | None:
            return next((dt for dt, msg in mine if pattern in msg), None)

        byte = next((msg for _, msg in mine if "first byte after" in msg), "")
        found = re.search(r"first byte after (\d+)ms", byte)
        out[f"turn{turn}"] = {
            "to_turn_start": first(f"[engine] turn {turn} start"),
            "to_request": first("[API REQUEST]"),
            "first_byte_ms": int(found.group(1)) if found else None,
            "to_turn_end": first(f"[engine] turn {turn} end"),
        }
    return out


def profile_turns(profile: dict[str, Any], windows: dict[int, tuple[float, float]]) -> dict[str, Any]:
    """Samples of a Chrome-format CPU profile (wall-clock microseconds) within each turn's
    window, and the functions with the most samples of their own."""
    nodes = {node["id"]: node["callFrame"] for node in profile["nodes"]}
    moment = profile["startTime"] / 1e6
    stamps = []
    for delta in profile["timeDeltas"]:
        moment += delta / 1e6
        stamps.append(moment)
    out: dict[str, Any] = {}
    for turn, (begin, end) in windows.items():
        own: dict[str, int] = {}
        count = 0
        for at, node in zip(stamps, profile["samples"], strict=False):
            if begin <= at <= end:
                frame = nodes[node]
                name = f"{frame['functionName'] or '(anonymous)'} {frame['url'].rsplit('/', 1)[-1]}"
                if name.startswith(("(idle)", "(program)", "(root)")):
                    continue
                count += 1
                own[name] = own.get(name, 0) + 1
        top = sorted(own.items(), key=lambda item: -item[1])[:8]
        out[f"turn{turn}"] = {"samples": count, "functions": len(own), "top": top}
    return out


def summarize(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for turn in TURNS:
        rows = [r[f"turn{turn}"] for r in runs if f"turn{turn}" in r]
        out[f"turn{turn}"] = {k: median(row.get(k) for row in rows) for k in keys}
    return out


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timing runs per variant")
    parser.add_argument("--debug-runs", type=int, default=3, help="debug-log runs per variant")
    parser.add_argument("--cold-runs", type=int, default=6, help="runs per variant with the turn written at launch")
    parser.add_argument("--profile", action="store_true", help="also one profiled run per variant (--cpu-prof)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "first_turn.json"))
    args = parser.parse_args()
    cli = find_test_cli()
    home = Path(tempfile.mkdtemp(prefix="bench-first-turn-"))
    arrivals = home / "arrivals.jsonl"
    fake = FakeProcess(dict(os.environ, **{ARRIVALS_VAR: str(arrivals)}))
    env = {
        **os.environ,
        "ANTHROPIC_BASE_URL": fake.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-test-key",
        "CLAUDE_CONFIG_DIR": str(home / "claude-config"),
    }
    results: dict[str, Any] = {
        "meta": {"cli": cli, "cli_version": cli_version(cli), "cpus": os.cpu_count(), "load_start": load()}
    }
    try:
        run = Run(home, fake, direct_launcher(cli, env, home / "state"), arrivals)
        timing: dict[str, list] = {v: [] for v in VARIANTS}
        for i in range(args.runs):
            for variant in VARIANTS if i % 2 == 0 else reversed(VARIANTS):
                timing[variant].append(run.timing(variant))
                t1, t2 = timing[variant][-1]["turn1"], timing[variant][-1]["turn2"]
                log(
                    f"timing {i + 1}/{args.runs} {variant:>10} (load {timing[variant][-1]['load']}): TTFT turn 1 "
                    f"{ms(t1['ttft'])} ms (upstream at {ms(t1['to_upstream'])}, CPU {ms(t1['cpu_turn'])}), turn 2 "
                    f"{ms(t2['ttft'])} ms (CPU {ms(t2['cpu_turn'])})"
                )
        phases: dict[str, list] = {v: [] for v in VARIANTS}
        for i in range(args.debug_runs):
            for variant in VARIANTS if i % 2 == 0 else reversed(VARIANTS):
                phases[variant].append(run.phases(variant))
                p = phases[variant][-1]
                log(f"debug {i + 1}/{args.debug_runs} {variant:>10}: gate {p['gate']}, turn 1 {p['turn1']}")
        timing_keys = ("ttft", "to_upstream", "upstream_to_first_token", "cpu_turn", "cpu_after", "requests")
        results["timing"] = {v: {"runs": timing[v], "median": summarize(timing[v], timing_keys)} for v in VARIANTS}
        phase_keys = ("to_turn_start", "to_request", "first_byte_ms", "to_turn_end")
        results["phases"] = {v: {"runs": phases[v], "median": summarize(phases[v], phase_keys)} for v in VARIANTS}
        results["boot_cpu"] = {v: median(r["boot_cpu"] for r in timing[v]) for v in VARIANTS}
        cold: dict[str, list] = {v: [] for v in VARIANTS}
        for i in range(args.cold_runs):
            for variant in VARIANTS if i % 2 == 0 else reversed(VARIANTS):
                cold[variant].append(run.cold(variant))
                log(f"cold {i + 1}/{args.cold_runs} {variant:>10}: {cold[variant][-1]}")
        results["cold"] = {
            v: {
                "runs": cold[v],
                "ttft": median(r["ttft"] for r in cold[v]),
                "cpu": median(r["cpu"] for r in cold[v]),
                "load": median(r["load"] for r in cold[v]),
            }
            for v in VARIANTS
        }
        if args.profile:
            results["profile"] = {v: run.profile(v, home / f"profile-{v}") for v in VARIANTS}
    finally:
        fake.stop()
        shutil.rmtree(home, ignore_errors=True)
    results["meta"]["load_end"] = load()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(report(results))
    print(f"JSON: {out}")
    return 0


def report(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"First turn of a spare vs later turns: CLI {meta['cli_version']}, {meta['cpus']} cores, load average "
        f"{meta['load_start']} at the start, {meta['load_end']} at the end (medians).",
        "",
        "| Variant | Turn | TTFT (ms) | Written → request at the fake (ms) | Request → first token (ms) "
        "| CLI CPU, turn (ms) | CLI CPU after the turn (ms) | Upstream requests |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        med = results["timing"][variant]["median"]
        for turn in TURNS:
            row = med[f"turn{turn}"]
            lines.append(
                f"| {variant} | {turn} | {ms(row['ttft'])} | {ms(row['to_upstream'])} "
                f"| {ms(row['upstream_to_first_token'])} | {ms(row['cpu_turn'])} | {ms(row['cpu_after'])} "
                f"| {row['requests']} |"
            )
    lines.append("")
    lines.append(
        "CPU until the idle process is quiet (launch, start-up, and with `initialize` the released work): "
        + ", ".join(f"{v} {ms(results['boot_cpu'][v])} ms" for v in VARIANTS)
        + "."
    )
    lines.append("")
    lines.append(
        "| Variant | Turn | → `turn start` (ms) | → `[API REQUEST]` (ms) | CLI's `first byte after` (ms) "
        "| → turn end (ms) |"
    )
    lines.append("|---|---|---|---|---|---|")
    for variant in VARIANTS:
        med = results["phases"][variant]["median"]
        for turn in TURNS:
            row = med[f"turn{turn}"]
            byte = row["first_byte_ms"]
            lines.append(
                f"| {variant} | {turn} | {ms(row['to_turn_start'])} | {ms(row['to_request'])} "
                f"| {'n/a' if byte is None else f'{byte:.0f}'} | {ms(row['to_turn_end'])} |"
            )
    lines.append("")
    lines.append("")
    lines.append(
        "Turn written at launch (a cold start for a waiting request), TTFT from the launch / CLI CPU to the "
        "result: "
        + "; ".join(
            f"{v} {ms(results['cold'][v]['ttft'])} ms / {ms(results['cold'][v]['cpu'])} ms (load "
            f"{results['cold'][v]['load']})"
            for v in VARIANTS
        )
        + "."
    )
    for variant, prof in (results.get("profile") or {}).items():
        if "error" in prof:
            lines.append(f"Profile ({variant}): {prof['error']}.")
            continue
        lines.append(
            f"Profile ({variant}, 200 µs samples of JavaScript): "
            + ", ".join(
                f"turn {t} {prof[f'turn{t}']['samples']} samples in {prof[f'turn{t}']['functions']} functions"
                for t in TURNS
            )
            + f"; turn 1's most sampled: {prof['turn1']['top'][:5]}."
        )
    lines.append("")
    for variant in VARIANTS:
        gates = [r["gate"] for r in results["phases"][variant]["runs"]]
        lines.append(f"{variant}: start-up gate released " + "; ".join(_gate(g) for g in gates) + ".")
    return "\n".join(lines)


def _gate(gate: dict[str, Any] | None) -> str:
    if gate is None:
        return "never (not armed)"
    when = "before turn 1" if gate["during_turn"] == 0 else f"during turn {gate['during_turn']}"
    return f"by {gate['reason']} {when} ({gate['tasks']})"


if __name__ == "__main__":
    sys.exit(main())
