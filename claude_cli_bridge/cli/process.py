"""One persistent CLI process (``--input-format stream-json``) and its turns.

A process holds a conversation: the history it was resumed from plus every completed turn.
``history`` records exactly that, so the pool can tell whether a request extends it. A turn
that did not complete (interrupted, failed, timed out, cut at a stop sequence) leaves a half
answer in the CLI's memory: the process is then ``spoiled``. A turn that ended in the
caller's tool calls is continued from a new transcript, never on this process. ``reusable``
is the one verdict on all of this, and the pool takes it as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import signal
import time
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path

import psutil

from ..core.limits import CliEvent
from ..core.messages import Block, Message, TextBlock, ThinkingBlock, ToolUseBlock, canonical_json
from ..core.turn import TextDelta, ToolCall, TurnDone, Usage
from ..errors import CliCrashed, InvalidRequest, TurnTimeout
from .profile import Profile
from .wire import TurnParser, initialize_line, interrupt_line, parse_line, user_line

log = logging.getLogger(__name__)

INVALID_SCHEMA = "--json-schema is not a valid JSON Schema"
LINE_LIMIT = 256 * 1024 * 1024  # CLI lines carry whole messages, images included
_EOF = object()
_ids = itertools.count(1)


class CliProcess:
    """A running ``claude -p`` process. Create with ``await CliProcess.start(...)`` (through
    ``cli.launch.Launcher``, which writes its files and builds its argv)."""

    def __init__(self, profile: Profile, history: tuple[Message, ...], private_dir: Path | None = None):
        self.id = next(_ids)
        self.profile = profile
        self.history = history
        self.private_dir = private_dir  # removed with the process (cli.launch)
        self.spoiled = False
        self._proc: asyncio.subprocess.Process | None = None
        self._lines: asyncio.Queue[object] = asyncio.Queue()
        self._stderr_tail = bytearray()
        self._tasks: list[asyncio.Task[None]] = []
        self._request_ids = itertools.count(1)
        self._parser = TurnParser()
        self._turn_open = False  # a turn began and its result line was not read
        self._ended_in_tool_call = False
        self.started = False  # it printed a JSON line: the launch worked
        self.turns = 0  # turns answered to the end (the dashboard, /health)
        self._stdout_closed = False  # its stdout ended: it is exiting, whatever returncode says yet
        self._config_dir = Path.home() / ".claude"
        # A worker (tap.inject) holds no caller conversation: the tap writes the caller's into
        # each of its upstream requests, so its own history is never the bridge's concern,
        # and a turn that ended in the caller's tool calls leaves it ready for any next turn.
        self.worker = False
        self.tap_token: str | None = None  # names its upstream requests to the tap (workers)
        self.max_turns: int | None = None  # a worker is recycled after this many turns
        self.last_answer: Message | None = None  # the assistant message of the last completed turn

    @property
    def partial_usage(self) -> Usage:
        """Usage the upstream reported so far in the current turn (message_start and deltas)."""
        return self._parser.last_usage

    # -- lifecycle -------------------------------------------------------------------
    @classmethod
    async def start(
        cls,
        argv: list[str],
        env: dict[str, str],
        *,
        cwd: Path,
        profile: Profile,
        history: tuple[Message, ...] = (),
        private_dir: Path | None = None,
    ) -> CliProcess:
        """Spawn the CLI in its own session (so its whole group can be stopped, and our
        Ctrl-C does not reach it). ``history`` is what its argv resumes."""
        process = cls(profile, history, private_dir)
        process._config_dir = (
            Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else Path.home() / ".claude"
        )
        process._proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=str(cwd),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
            start_new_session=True,
        )
        process._tasks = [
            asyncio.create_task(process._read_stdout()),
            asyncio.create_task(process._drain_stderr()),
        ]
        if not history:
            # A new conversation's process (a spare, mostly): the handshake lets the CLI run
            # its deferred start-up work now rather than during the first turn (wire.py).
            # Resumed processes start their turn at once, so there is nothing to gain there.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await process._write(initialize_line("bridge-init"))
        return process

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def alive(self) -> bool:
        """Running and still talking: a process whose stdout closed is dying even before it
        is reaped (SIGKILL closes the pipes first), and must never be handed out."""
        return self._proc is not None and self._proc.returncode is None and not self._stdout_closed

    @property
    def exit_code(self) -> int | None:
        """None while running; negative: killed by that signal."""
        return self._proc.returncode if self._proc is not None else None

    @property
    def reusable(self) -> bool:
        """Whether this process may serve the next turn of the conversation it holds (a
        worker: any next turn, until it has served ``max_turns``)."""
        if self.max_turns is not None and self.turns >= self.max_turns:
            return False
        return self.alive and not self.spoiled and not self._turn_open and not self._ended_in_tool_call

    def failure(self) -> str:
        """What the CLI printed last (stderr and non-JSON stdout), for error messages."""
        return self.stderr_tail()

    @property
    def callers_fault(self) -> bool:
        """It exited over the request's own options (an invalid JSON schema): the caller gets a
        400, and the pool does not count it as a CLI that fails to start."""
        return INVALID_SCHEMA in self.stderr_tail()

    async def wait(self) -> None:
        if self._proc is not None:
            await self._proc.wait()

    def rss(self) -> int:
        """Resident memory of the process tree in bytes (0 if gone). Blocking: /proc reads."""
        try:
            root = psutil.Process(self.pid)
            return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except (psutil.Error, TypeError):
            return 0

    async def stop(self, patience: float = 0.5) -> None:
        """End the process and remove everything it leaves behind.

        A turn still running is interrupted first (the CLI drops its upstream request at once).
        Closing stdin lets an idle CLI exit cleanly; after ``patience`` seconds its whole
        process group is killed (the MCP server and hooks included), then any descendant
        that left the group.
        """
        pid = self.pid
        if self._turn_open and self.alive:
            await self.interrupt(wait=1.0)
        if self._proc is not None and self._proc.returncode is None and self._proc.stdin is not None:
            with contextlib.suppress(Exception):
                self._proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(patience):
                    await self._proc.wait()
        if self._proc is not None and self._proc.returncode is None:
            descendants = _descendants(pid)
            _kill_group(pid)
            for child in descendants:
                with contextlib.suppress(psutil.Error):
                    child.kill()
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                async with asyncio.timeout(5):
                    await self._proc.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(Exception):
                self._proc.stdin.close()
        if pid is not None:
            await asyncio.to_thread(_remove_leftovers, pid, self._config_dir)
        if self.private_dir is not None:
            await asyncio.to_thread(shutil.rmtree, self.private_dir, True)

    # -- I/O -------------------------------------------------------------------------
    async def _read_stdout(self) -> None:
        assert self._proc and self._proc.stdout
        try:
            while True:
                raw = await self._proc.stdout.readline()
                if not raw:
                    break
                line = parse_line(raw)
                if line is not None:
                    self.started = True
                    self._lines.put_nowait(line)
                else:  # the CLI prints start-up errors as plain text: keep them for diagnostics
                    self._note_diagnostic(raw)
        except (ValueError, asyncio.LimitOverrunError) as exc:  # pragma: no cover - a line over the limit
            log.error("CLI %s printed an over-long line: %s", self.id, exc)
        finally:
            self._stdout_closed = True
            self._lines.put_nowait(_EOF)

    async def _drain_stderr(self) -> None:
        assert self._proc and self._proc.stderr
        while True:
            chunk = await self._proc.stderr.read(65536)
            if not chunk:
                return
            self._note_diagnostic(chunk)

    def _note_diagnostic(self, text: bytes) -> None:
        self._stderr_tail.extend(text)
        del self._stderr_tail[:-4096]

    async def _write(self, text: str) -> None:
        assert self._proc and self._proc.stdin
        self._proc.stdin.write(text.encode())
        await self._proc.stdin.drain()

    def stderr_tail(self) -> str:
        return self._stderr_tail.decode(errors="replace").strip()[-800:]

    # -- turns -----------------------------------------------------------------------
    async def turn(
        self,
        message: Message | None,
        *,
        client_tools: Mapping[str, str] = {},
        silence_timeout: float,
        turn_timeout: float,
    ) -> AsyncGenerator[CliEvent, None]:
        """Run one turn with ``message`` as the user's prompt; yield its events (the neutral
        turn events, plus ``RateLimitInfo`` readings for the engine).

        ``message`` None reads the turn a resumed process runs by itself (continuing after
        deferred tool calls; its history already ends with the tool results).
        On normal completion ``history`` grows by the user message and the assistant's
        answer. If the generator is closed early or fails, the process is spoiled and no
        longer ``reusable``; ``stop`` interrupts a turn left running.
        """
        if not self.alive:
            raise await self._exited_before_turn()
        if self.spoiled:
            raise CliCrashed("internal: a spoiled CLI process was asked for a turn")
        self._turn_open = True
        self._ended_in_tool_call = False
        parser = self._parser = TurnParser(client_tools=client_tools, structured=self.profile.json_schema is not None)
        answer: list[str] = []
        tool_calls: list[ToolCall] = []
        completed = False
        deadline = time.monotonic() + turn_timeout
        try:
            try:
                if message is not None:
                    await self._write(user_line(message))
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise await self._exited_before_turn() from exc
            pending: list[str] = []  # text already read but not yet passed on
            while True:
                if pending and self._lines.empty():
                    # Deltas that piled up while the consumer was busy go out as one: fewer
                    # writes per token under load, and nothing is held back when it is not.
                    yield TextDelta("".join(pending))
                    pending.clear()
                line = await self._next_line(deadline, silence_timeout, turn_timeout)
                if line is _EOF:
                    code = await self._returncode()
                    if self.callers_fault:
                        # The caller's schema (format / response_format): their error, not ours.
                        detail = self.stderr_tail().split(INVALID_SCHEMA, 1)[1].strip(" :\n")
                        raise InvalidRequest(f"The JSON schema is not valid: {detail}")
                    raise CliCrashed(f"The Claude CLI exited mid-turn (exit code {code}). {self.stderr_tail()}".strip())
                assert isinstance(line, dict)
                for event in parser.feed(line):
                    if isinstance(event, TextDelta):
                        answer.append(event.text)
                        pending.append(event.text)
                        continue
                    if pending:
                        yield TextDelta("".join(pending))
                        pending.clear()
                    if isinstance(event, ToolCall):
                        tool_calls.append(event)
                    elif isinstance(event, TurnDone) and parser.cut_short:
                        # The CLI would go on by itself: its max_tokens recovery asks the
                        # upstream again at once, spending quota, and an interrupt can arrive
                        # after that request left. The process is done for: kill it now.
                        self.spoiled = True
                        self._turn_open = False
                        _kill_group(self.pid)
                    elif isinstance(event, TurnDone):
                        completed = True
                        self.turns += 1
                        answered = _answer_message(answer, tool_calls, parser.thinking_blocks)
                        self.last_answer = answered
                        if not self.worker:
                            self._ended_in_tool_call = bool(tool_calls)
                            asked = (message,) if message is not None else ()
                            self.history = (*self.history, *asked, answered)
                    yield event
                if parser.done:
                    # Cut short (max_tokens), the CLI's own turn goes on: it stays open.
                    self._turn_open = parser.cut_short
                    return
        finally:
            if parser.done and not parser.cut_short:
                self._turn_open = False  # the result line was read, even if it was a failure
            if not completed:
                self.spoiled = True

    async def _exited_before_turn(self) -> CliCrashed:
        """The error for a CLI that died before its turn, with what it said: the reader tasks
        get a moment to collect its last output (a write can fail before they have read it)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._returncode()  # the pool tells a crash from a kill by it
        return CliCrashed(f"The Claude CLI exited before the turn started. {self.stderr_tail()}".strip())

    async def _next_line(self, deadline: float, silence_timeout: float, turn_timeout: float) -> object:
        """The next stdout line (or _EOF); raises TurnTimeout past either limit."""
        if not self._lines.empty():
            return self._lines.get_nowait()  # no timer task for lines already waiting
        wait = min(silence_timeout, deadline - time.monotonic())
        if wait <= 0:
            raise TurnTimeout(f"The turn took longer than {turn_timeout:.0f} s and was stopped.")
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
            # cancellation of a client that left, and the turn would then run to its end.
            async with asyncio.timeout(wait):
                return await self._lines.get()
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise TurnTimeout(f"The turn took longer than {turn_timeout:.0f} s and was stopped.") from None
            raise TurnTimeout(f"The Claude CLI was silent for {silence_timeout:.0f} s; the turn was stopped.") from None

    async def interrupt(self, wait: float = 2.0) -> None:
        """Ask the CLI to stop the current turn (it drops the upstream request at once) and
        wait briefly for the turn's ``result`` line. The process is spoiled afterwards."""
        self.spoiled = True
        if not self.alive:
            return
        with contextlib.suppress(Exception):
            await self._write(interrupt_line(f"interrupt-{next(self._request_ids)}"))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                while True:
                    line = await self._lines.get()
                    if line is _EOF or (isinstance(line, dict) and line.get("type") == "result"):
                        self._turn_open = False
                        return

    async def _returncode(self) -> int | None:
        assert self._proc
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._proc.wait()
        return self._proc.returncode


def _answer_message(texts: list[str], tool_calls: list[ToolCall], thinking: list[ThinkingBlock]) -> Message:
    """The assistant message a completed turn adds to the process's history. Its signed
    thinking is kept when it called tools: the continuation after the calls needs it."""
    blocks: list[Block] = list(thinking) if tool_calls else []
    if texts:
        blocks.append(TextBlock("".join(texts)))
    blocks.extend(ToolUseBlock(call.id, call.name, canonical_json(call.arguments)) for call in tool_calls)
    return Message("assistant", tuple(blocks))


def _descendants(pid: int | None) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True) if pid is not None else []
    except psutil.Error:
        return []


def _kill_group(pid: int | None) -> None:
    """SIGKILL the process group the CLI leads (started with its own session)."""
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _remove_leftovers(pid: int, config_dir: Path) -> None:
    """A killed CLI leaves ``<config>/sessions/<pid>.*`` and ``/tmp/cc-socks/<pid>.sock``."""
    sessions = config_dir / "sessions"
    if sessions.is_dir():
        for leftover in sessions.glob(f"{pid}.*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
    with contextlib.suppress(OSError):
        Path(f"/tmp/cc-socks/{pid}.sock").unlink()
