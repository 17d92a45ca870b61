"""Feature probes: what this CLI really does, checked with the exact launch the pool uses.

Each probe launches the CLI through ``cli.launch.Launcher`` (the one argv builder, the same
environment, working directory and settings files) against a loopback stand-in of the
Messages API (``cli.standin``), so nothing reaches the network and no quota is spent, and
checks what the stand-in received. Each feature ends ``ok`` or failed with a reason:

- ``basic``: a stream-json turn answers (text, usage, a result line). Failing: start-up fails.
- ``caller_text``: caller text reaches the model as written: a prompt starting with a slash
  command is sent upstream, and ``@path`` mentions of a planted secret file and directory
  arrive literally with the secret nowhere in the request. Failing: start-up fails.
- ``single_call``: every turn makes exactly one upstream request (no warm-up or title calls
  spending the user's quota). Failing: start-up fails.
- ``transcripts``: a written history is replayed as the same real turns.
- ``client_tools``: a tool history of five turns stays five turns in order, a call of the
  caller's tool is deferred back, and the stored result and the text beside it reach the
  model on continuation.
- ``structured_output``: ``--json-schema`` gives the structured answer in one request.
- ``error_status``: upstream 429 and 529 come back with their statuses.

A failed feature is switched off: requests that need it are refused naming the CLI version
and the feature (``errors.FeatureUnavailable``), never answered wrongly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock, canonical_json
from ..core.status import FeatureSnapshot
from ..core.turn import TextDelta, ToolCall, ToolSpec, TurnDone, TurnRequest
from ..errors import BridgeError, UpstreamError
from .launch import Launcher, process_env
from .process import CliProcess
from .profile import Profile
from .standin import Reply, StandIn, user_texts
from .version import FEATURE_MINIMUMS, dotted, parse_version

FEATURES: dict[str, str] = {
    "basic": "answering a turn over stream-json",
    "caller_text": "delivering caller text uninterpreted (no @file reads, no slash commands)",
    "single_call": "one upstream request per turn (no hidden calls spending quota)",
    "transcripts": "replaying conversation history as real turns",
    "client_tools": "client-defined tools (deferred calls, tool history, results on continuation)",
    "structured_output": "structured output (JSON schema)",
    "error_status": "reporting upstream error statuses",
    "workers": "any warm process serving any conversation (the tap writes the conversation)",
}
FATAL = ("basic", "caller_text", "single_call")
PROBE_ANSWER = "probe answer"


@dataclass
class FeatureState:
    ok: bool | None  # None: not probed
    detail: str


@dataclass
class ProbeReport:
    """Every feature's state for one CLI."""

    cli_version: str
    states: dict[str, FeatureState] = field(default_factory=dict)

    @classmethod
    def unprobed(cls, cli_version: str) -> ProbeReport:
        return cls(cli_version, {name: FeatureState(None, "not probed (PROBE_FEATURES=false)") for name in FEATURES})

    def failed(self) -> list[str]:
        return [name for name, state in self.states.items() if state.ok is False]

    def fatal(self) -> str | None:
        """Why this CLI cannot serve at all, or None."""
        for name in FATAL:
            state = self.states.get(name)
            if state is not None and state.ok is False:
                return f"the Claude CLI {self.cli_version} fails the '{name}' check ({FEATURES[name]}): {state.detail}"
        return None

    def refusal(self, name: str) -> str | None:
        """The message refusing a request that needs ``name``, or None if it is usable."""
        state = self.states.get(name)
        if state is None or state.ok is not False:
            return None
        minimum = FEATURE_MINIMUMS.get(name)
        need = f" need Claude Code >= {dotted(minimum)};" if minimum else " are not available with"
        return (
            f"{FEATURES[name][0].upper()}{FEATURES[name][1:]}{need} this is {self.cli_version}, where the start-up "
            f"check failed: {state.detail}"
        )

    def snapshot(self) -> dict[str, FeatureSnapshot]:
        """For /health ``features``: each feature's state and what the probe saw."""
        return {
            name: FeatureSnapshot("ok" if s.ok else ("failed" if s.ok is False else "unknown"), s.detail)
            for name, s in self.states.items()
        }


class ProbeFailed(Exception):
    """A feature does not work; the message says what was seen."""


@dataclass
class _Context:
    cli: str
    work_dir: Path
    root: Path
    timeout: float

    @contextlib.asynccontextmanager
    async def upstream(
        self, name: str, script: Callable[[dict[str, Any]], Reply]
    ) -> AsyncIterator[tuple[StandIn, Launcher]]:
        """A stand-in upstream and a launcher pointed at it, for one probe."""
        async with StandIn(script) as stand_in:
            env = {k: v for k, v in process_env().items() if not k.startswith(("ANTHROPIC_", "CLAUDE_CODE_OAUTH"))}
            env.pop("CLAUDE_CONFIG_DIR", None)
            env.update(ANTHROPIC_BASE_URL=stand_in.url, ANTHROPIC_API_KEY="sk-ant-probe")
            launcher = Launcher(self.cli, self.root / name, env, self.work_dir, max_retries=0)
            launcher.prepare()
            yield stand_in, launcher


async def _turn(process: CliProcess, prompt: Message | None, tools: dict[str, str] | None = None) -> list[Any]:
    events = []
    async for event in process.turn(prompt, client_tools=tools or {}, silence_timeout=30, turn_timeout=60):
        events.append(event)
    return events


def _text(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def _user(text: str) -> Message:
    return Message("user", (TextBlock(text),))


def _last_user_text(body: dict[str, Any]) -> str:
    texts = user_texts(body)
    return texts[-1][1] if texts and texts[-1][0] == "user" else ""


def _expect_calls(stand_in: StandIn, expected: int, what: str) -> None:
    if len(stand_in.received) != expected:
        raise ProbeFailed(f"{what} made {len(stand_in.received)} upstream requests instead of {expected}")


async def _with_process(launcher: Launcher, profile: Profile, history: tuple[Message, ...],
                        work: Callable[[CliProcess], Awaitable[str]]) -> str:  # fmt: skip
    try:
        process = await launcher(profile, history)
    except Exception as exc:
        raise ProbeFailed(f"the CLI could not be launched: {exc}") from exc
    try:
        return await work(process)
    except BridgeError as exc:
        raise ProbeFailed(f"{exc.message} {process.failure()}".strip()) from exc
    finally:
        await process.stop()


# -- the probes ------------------------------------------------------------------------------
async def _probe_caller_text(ctx: _Context, states: dict[str, FeatureState]) -> None:
    """basic, caller_text and single_call in one process (two turns)."""
    secret = f"probe-secret-{secrets.token_hex(8)}"
    planted = ctx.root / "planted"
    planted.mkdir()
    (planted / "secret.txt").write_text(f"{secret}\n", encoding="utf-8")
    (planted / f"{secret}.name").write_text("x", encoding="utf-8")  # a directory listing would show it
    slash = "/cost please, and /init"
    mention = f'Quote @{planted / "secret.txt"} verbatim and list @{planted}/ and @"{planted / "secret.txt"}"'
    async with ctx.upstream("caller_text", lambda body: Reply(PROBE_ANSWER)) as (stand_in, launcher):

        async def work(process: CliProcess) -> str:
            first = await _turn(process, _user(slash))
            if not any(isinstance(e, TurnDone) for e in first):
                raise ProbeFailed("the turn ended without a result")
            states["basic"] = FeatureState(True, "a stream-json turn answers")
            if not stand_in.received:
                raise ProbeFailed(f"the CLI answered {slash!r} itself (a slash command) without asking the model")
            if _text(first) != PROBE_ANSWER:
                raise ProbeFailed(f"the answer was {_text(first)!r}, not the model's")
            second = await _turn(process, _user(mention))
            if not any(isinstance(e, TurnDone) for e in second):
                raise ProbeFailed("the second turn ended without a result")
            received = json.dumps(stand_in.received)
            if secret in received:
                raise ProbeFailed("an @path mention made the CLI read a host file and send it to the model")
            for body, sent in zip(stand_in.received, (slash, mention), strict=False):
                if _last_user_text(body) != sent:
                    raise ProbeFailed(f"the model received {_last_user_text(body)!r} instead of {sent!r}")
            return "slash commands and @path mentions reach the model as written; no host file was read"

        try:
            states["caller_text"] = FeatureState(True, await _with_process(launcher, Profile(model="haiku"), (), work))
        except ProbeFailed as exc:
            states.setdefault("basic", FeatureState(False, str(exc)))
            states["caller_text"] = FeatureState(False, str(exc))
        _note_calls(states, stand_in, 2, "two turns")


async def _probe_transcripts(ctx: _Context, states: dict[str, FeatureState]) -> None:
    history = (_user("probe: first question"), Message("assistant", (TextBlock("probe: first answer"),)))
    async with ctx.upstream("transcripts", lambda body: Reply(PROBE_ANSWER)) as (stand_in, launcher):

        async def work(process: CliProcess) -> str:
            await _turn(process, _user("probe: follow-up"))
            _expect_calls(stand_in, 1, "a resumed turn")
            seen = user_texts(stand_in.received[0])
            expected = [
                ("user", "probe: first question"),
                ("assistant", "probe: first answer"),
                ("user", "probe: follow-up"),
            ]
            if seen != expected:
                raise ProbeFailed(f"the model would have seen {seen!r} instead of {expected!r}")
            return "history is replayed as real turns"

        states["transcripts"] = await _state(_with_process(launcher, Profile(model="haiku"), history, work))
        _note_calls(states, stand_in, 1, "a resumed turn")


async def _probe_client_tools(ctx: _Context, states: dict[str, FeatureState]) -> None:
    """Five turns of tool history stay five; two parallel calls come back to the caller; both
    results and the text beside them reach the model on continuation."""
    tool = ToolSpec("probe_tool", "A probe tool.", {"type": "object", "properties": {"q": {"type": "integer"}}})
    profile = Profile(model="haiku", tools_json=Profile.tools_of((tool,)))
    cli_name = profile.tool_names.to_cli["probe_tool"]
    earlier = ToolUseBlock("toolu_probe_earlier", "probe_tool", canonical_json({"q": 1}))
    history = (
        _user("probe: question"),
        Message("assistant", (TextBlock("probe: calling"), earlier)),
        Message("user", (ToolResultBlock(earlier.id, (TextBlock("probe: earlier result"),)),)),
        Message("assistant", (TextBlock("probe: answer"),)),
    )
    calls = (("toolu_probe_first", cli_name, {"q": 2}), ("toolu_probe_second", cli_name, {"q": 3}))
    replies = iter([Reply("", tool_uses=calls)])  # calls alone, no text before them (older CLIs lose those)

    def script(body: dict[str, Any]) -> Reply:
        return next(replies, Reply(PROBE_ANSWER))  # the calls first, then answers

    async with ctx.upstream("client_tools", script) as (stand_in, launcher):

        async def call(process: CliProcess) -> str:
            events = await _turn(process, _user("probe: again"), profile.tool_names.to_caller)
            _expect_calls(stand_in, 1, "a turn with tool history")
            sent = [m for m in stand_in.received[0]["messages"] if m.get("role") in ("user", "assistant")]
            roles = [m["role"] for m in sent]
            if roles != ["user", "assistant", "user", "assistant", "user"]:
                raise ProbeFailed(f"a five-turn tool history reached the model as {roles}")
            blocks = [b.get("type") for m in sent for b in m.get("content") or [] if isinstance(b, dict)]
            if "tool_use" not in blocks or "tool_result" not in blocks:
                raise ProbeFailed("tool_use/tool_result blocks of the history did not reach the model as such")
            returned = [e.id for e in events if isinstance(e, ToolCall) and e.name == "probe_tool"]
            done = next((e for e in events if isinstance(e, TurnDone)), None)
            if returned != [c[0] for c in calls] or done is None or done.stop_reason != "tool_use":
                raise ProbeFailed(f"two parallel calls of the caller's tool came back as {returned}, not deferred")
            return "ok"

        def resume(
            expected: dict[str, str], beside: str | None, request: int
        ) -> Callable[[CliProcess], Awaitable[str]]:
            async def work(process: CliProcess) -> str:
                await _turn(process, None, profile.tool_names.to_caller)
                _expect_calls(stand_in, request + 1, "a continuation")
                last = [m for m in stand_in.received[request]["messages"] if m.get("role") == "user"][-1]
                results = {
                    b.get("tool_use_id"): json.dumps(b.get("content"))
                    for b in last.get("content") or []
                    if isinstance(b, dict) and b.get("type") == "tool_result"
                }
                for tool_id, text in expected.items():
                    if text not in results.get(tool_id, ""):
                        raise ProbeFailed(
                            f"the caller's result for {tool_id} did not reach the model (it got {results})"
                        )
                if beside is not None and beside not in json.dumps(last):
                    raise ProbeFailed("the text sent beside the tool results did not reach the model")
                return "ok"

            return work

        try:
            await _with_process(launcher, profile, history, call)
            uses = tuple(
                ToolUseBlock(tool_id, "probe_tool", canonical_json(arguments)) for tool_id, _, arguments in calls
            )
            asked = (*history, _user("probe: again"), Message("assistant", uses))
            both = {"toolu_probe_first": "probe: first result", "toolu_probe_second": "probe: second result"}
            results = tuple(ToolResultBlock(tool_id, (TextBlock(text),)) for tool_id, text in both.items())
            # The usual case: both results, nothing beside them.
            await _with_process(launcher, profile, (*asked, Message("user", results)), resume(both, None, 1))
            # Text beside the results (one call answered here: the other in its own record).
            await _with_process(
                launcher, profile, (*asked, Message("user", (*results, TextBlock("probe: beside")))),
                resume(both, "probe: beside", 2),
            )  # fmt: skip
            states["client_tools"] = FeatureState(
                True, "tool history, parallel deferred calls and their results (with text beside them or not) work"
            )
        except ProbeFailed as exc:
            states["client_tools"] = FeatureState(False, str(exc))
        _note_calls(states, stand_in, 3, "parallel tool calls and two continuations")


async def _probe_structured_output(ctx: _Context, states: dict[str, FeatureState]) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}

    def script(body: dict[str, Any]) -> Reply:
        if any(tool.get("name") == "StructuredOutput" for tool in body.get("tools", [])):
            return Reply("", tool_uses=(("toolu_probe_structured", "StructuredOutput", {"answer": 42}),))
        return Reply("no structured output tool was offered")

    async with ctx.upstream("structured_output", script) as (stand_in, launcher):

        async def work(process: CliProcess) -> str:
            events = await _turn(process, _user("probe: structured"))
            _expect_calls(stand_in, 1, "a structured-output turn")
            try:
                value = json.loads(_text(events))
            except ValueError:
                value = None
            if value != {"answer": 42}:
                raise ProbeFailed(f"the structured answer came back as {_text(events)[:200]!r}")
            return "--json-schema answers with the structured output"

        profile = Profile(model="haiku", json_schema=Profile.schema_json(schema))
        states["structured_output"] = await _state(_with_process(launcher, profile, (), work))
        _note_calls(states, stand_in, 1, "a structured-output turn")


async def _probe_error_status(ctx: _Context, states: dict[str, FeatureState]) -> None:
    statuses = iter([(429, "rate_limit_error"), (529, "overloaded_error")])

    def script(body: dict[str, Any]) -> Reply:
        status, kind = next(statuses, (500, "api_error"))
        return Reply(status=status, error_type=kind)

    async with ctx.upstream("error_status", script) as (_stand_in, launcher):
        seen: list[int] = []
        try:
            for _ in range(2):
                process = await launcher(Profile(model="haiku"), ())
                try:
                    await _turn(process, _user("probe: error"))
                    raise ProbeFailed("an upstream error was answered as a success")
                except UpstreamError as exc:
                    seen.append(exc.upstream_status or 0)
                except BridgeError as exc:
                    raise ProbeFailed(f"an upstream error came back as: {exc.message}") from exc
                finally:
                    await process.stop()
            if seen != [429, 529]:
                raise ProbeFailed(f"upstream 429 and 529 came back as {seen}")
            states["error_status"] = FeatureState(True, "429 and 529 are reported with their statuses")
        except ProbeFailed as exc:
            states["error_status"] = FeatureState(False, str(exc))


async def _state(work: Awaitable[str]) -> FeatureState:
    try:
        return FeatureState(True, await work)
    except ProbeFailed as exc:
        return FeatureState(False, str(exc))


def _note_calls(states: dict[str, FeatureState], stand_in: StandIn, expected: int, what: str) -> None:
    """Record extra upstream requests (a warm-up, a title...) against single_call."""
    if len(stand_in.received) > expected and states.get("single_call", FeatureState(True, "")).ok is not False:
        states["single_call"] = FeatureState(
            False, f"{what} made {len(stand_in.received)} upstream requests instead of {expected}"
        )


async def _probe_workers(ctx: _Context, states: dict[str, FeatureState]) -> None:
    """A worker's turn, written by the tap, sends what a process resumed from the same
    history sends (but for the environment note and per-process ids); a call of the caller's
    tool comes back in one upstream request; the worker then serves another conversation."""
    from ..tap.rewrite import strip_environment_note  # the tap is not needed by other probes
    from ..tap.server import Tap, TapSettings
    from .worker import assignment_for

    tool = ToolSpec("probe_tool", "A probe tool.", {"type": "object", "properties": {"q": {"type": "integer"}}})

    def script(body: dict[str, Any]) -> Reply:
        offered = [t.get("name") for t in body.get("tools") or []]
        last = user_texts(body)[-1][1] if user_texts(body) else ""
        if "probe_tool" in offered and last == "probe: call it":
            return Reply("", tool_uses=(("toolu_probe_worker", "probe_tool", {"q": 7}),))
        return Reply(PROBE_ANSWER)

    history = [_user("probe: first"), Message("assistant", (TextBlock("probe: one"),)), _user("probe: second")]
    request = TurnRequest(model="haiku", messages=history, system="probe: system")

    def comparable(body: dict[str, Any]) -> dict[str, Any]:
        body = json.loads(json.dumps(body))
        strip_environment_note(body)
        body.pop("metadata", None)
        return body

    async with ctx.upstream("workers", script) as (stand_in, launcher):
        tap = Tap(TapSettings(upstream=stand_in.url), launcher.base_env)
        await tap.start()
        try:

            async def resumed(process: CliProcess) -> str:
                await _turn(process, history[-1])
                return "ok"

            await _with_process(launcher, Profile(model="haiku", system="probe: system"), tuple(history[:-1]), resumed)
            expected = comparable(stand_in.received[-1])
            launcher.tap, launcher.workers = tap, True

            async def serve(process: CliProcess) -> str:
                for turn_request, expect_call in (
                    (request, False),
                    (TurnRequest(model="haiku", messages=[_user("probe: call it")], tools=(tool,)), True),
                    (TurnRequest(model="haiku", messages=[_user("probe: another")]), False),
                ):
                    assignment, names = assignment_for(turn_request, turn_request.messages)
                    assert process.tap_token is not None
                    tap.assign(process.tap_token, assignment)
                    before = len(stand_in.received)
                    try:
                        events = await _turn(process, _user(assignment.marker), names)
                    finally:
                        tap.release(process.tap_token)
                    _expect_calls(stand_in, before + 1, "a worker's turn")
                    sent = stand_in.received[-1]
                    if turn_request is request and comparable(sent) != expected:
                        raise ProbeFailed("a worker's request differs from a resumed process's")
                    if user_texts(sent) != [(m.role, m.text) for m in turn_request.messages]:
                        raise ProbeFailed(f"a worker's request carried {user_texts(sent)!r}")
                    calls = [e.name for e in events if isinstance(e, ToolCall)]
                    done = next((e for e in events if isinstance(e, TurnDone)), None)
                    if expect_call and (calls != ["probe_tool"] or done is None or done.stop_reason != "tool_use"):
                        raise ProbeFailed(f"a call of the caller's tool came back as {calls}")
                    if expect_call and _text(events):
                        raise ProbeFailed("the tap's answer to the CLI's follow-up reached the caller")
                    if not process.reusable:
                        raise ProbeFailed("the worker could not serve a next turn")
                return "ok"

            await _with_process(launcher, Profile(model="haiku"), (), serve)
            states["workers"] = FeatureState(
                True, "a worker's turn sends what a resumed process sends; tool calls end its turn; it serves the next"
            )
        except ProbeFailed as exc:
            states["workers"] = FeatureState(False, str(exc))
        finally:
            await tap.close()


PROBES = (
    _probe_caller_text,
    _probe_transcripts,
    _probe_client_tools,
    _probe_structured_output,
    _probe_error_status,
    _probe_workers,
)


async def run_probes(
    cli: str, cli_version: str, work_dir: Path, timeout: float = 90, concurrency: int = 3
) -> ProbeReport:
    """Run every probe against ``cli`` (at most ``concurrency`` CLI processes at once)."""
    root = Path(tempfile.mkdtemp(prefix="claude-bridge-probe-"))
    states: dict[str, FeatureState] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one(probe: Callable[[_Context, dict[str, FeatureState]], Awaitable[None]]) -> None:
        async with gate:
            try:
                async with asyncio.timeout(timeout):
                    await probe(_Context(cli, work_dir, root, timeout), states)
            except TimeoutError:
                name = probe.__name__.removeprefix("_probe_")
                states.setdefault(name, FeatureState(False, f"the CLI did not finish within {timeout:.0f} s"))

    try:
        await asyncio.gather(*(one(probe) for probe in PROBES))
    finally:
        await asyncio.to_thread(shutil.rmtree, root, True)
    states.setdefault("single_call", FeatureState(True, "one upstream request per turn"))
    for name in FEATURES:
        states.setdefault(name, FeatureState(False, "the probe did not run to its end"))
    return ProbeReport(cli_version, {name: states[name] for name in FEATURES})


def workers_supported(features: ProbeReport, cli_version: str) -> bool:
    """The ``workers`` probe's verdict; unprobed (PROBE_FEATURES=false), the versions it passed on."""
    state = features.states.get("workers")
    if state is not None and state.ok is not None:
        return state.ok
    version = parse_version(cli_version)
    return version is not None and version >= FEATURE_MINIMUMS["workers"]
