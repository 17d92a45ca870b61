"""The engine: answers a TurnRequest with CLI turns from the pool. The APIs' only way in.

A request's history (every message but the last) must be what the chosen CLI process holds;
the last message, a user turn, is sent as the prompt. Held processes answer follow-ups warm;
otherwise the pool starts a process resumed from a transcript of the history, so earlier
turns reach the model as real turns. Only if the start-up probe found that this CLI cannot
resume transcripts is the history flattened into the prompt (logged loudly).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

from .cli.client_tools import split_continuation, with_cli_names, write_config
from .cli.process import CliProcess
from .cli.profile import Profile, process_env
from .cli.wire import write_transcript
from .core.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock
from .core.models import CATALOG, resolve_model
from .core.stops import StopScanner
from .core.tools import check_history_calls, check_tool_specs
from .core.turn import TextDelta, ToolCall, TurnDone, TurnEvent, TurnRequest
from .errors import InvalidRequest
from .pool import Pool, PoolLimits
from .probe import run_probe
from .settings import Settings

log = logging.getLogger(__name__)


class BridgeEngine:
    def __init__(self, settings: Settings, cli_path: str, cli_version: str = ""):
        self.settings = settings
        self.cli_path = cli_path
        self.cli_version = cli_version
        self.flatten_history = False  # set by the start-up probe if transcripts do not work
        self.probe_detail = "not run"
        self._probe_task: asyncio.Task | None = None
        self.state_dir = Path(settings.state_dir) / f"run-{uuid.uuid4().hex[:8]}"
        self.pool = Pool(self._spawn, _limits(settings))

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        (self.state_dir / "transcripts").mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.state_dir / "work").mkdir(parents=True, exist_ok=True, mode=0o700)
        self.pool.start([Profile(model=self.settings.default_model)])
        if self.settings.probe_transcripts:
            self._probe_task = asyncio.create_task(self._probe())

    async def _probe(self) -> None:
        result = await run_probe(self.cli_path)
        self.probe_detail = result.detail
        if result.ok:
            log.info("transcript probe: %s", result.detail)
            return
        self.flatten_history = True
        log.error(
            "transcript probe FAILED (%s): this CLI does not replay transcripts as real turns, so "
            "history will be FLATTENED into one prompt until the CLI is fixed or replaced",
            result.detail,
        )

    async def close(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
        await self.pool.close(self.settings.shutdown_grace_seconds)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    async def _spawn(self, profile: Profile, history: tuple[Message, ...]) -> CliProcess:
        """Start a process holding ``history``: resumed from a transcript of it, and, with the
        caller's tools, serving them over MCP. A history ending with tool results makes the
        process continue by itself (see cli.client_tools)."""
        name = uuid.uuid4().hex
        tmpdir = self.state_dir / "tmp" / name
        tmpdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        env = profile.env(process_env(), self.settings.cli_max_retries)
        results = tmpdir / "tool-results.json"
        offered = profile.tools_json is not None and profile.tools_offered
        extra = write_config(tmpdir, profile.tools_json, results) if offered else []
        transcript = None
        if history:
            transcript = self.state_dir / "transcripts" / f"{name}.jsonl"
            messages = with_cli_names(list(history), profile.tool_names)
            if _ends_with_tool_results(messages):
                continuation = split_continuation(messages)
                results.write_text(json.dumps({continuation.marked.id: continuation.result}), encoding="utf-8")
                if continuation.resume_prompt:
                    env["CLAUDE_CODE_RESUME_PROMPT"] = continuation.resume_prompt
                earlier = [continuation.earlier_results] if continuation.earlier_results else []
                write_transcript(continuation.messages + earlier, transcript, deferred=continuation.marked)
            else:
                write_transcript(messages, transcript)
        return await CliProcess.start(
            self.cli_path,
            profile,
            self.state_dir / "work" / name,
            env,
            history=history,
            transcript=transcript,
            tmpdir=tmpdir,
            extra_args=extra,
        )

    # -- the Engine protocol -----------------------------------------------------------
    def models(self) -> list[str]:
        return [info.id for info in CATALOG]

    def status(self) -> dict[str, Any]:
        return {
            "cli_path": self.cli_path,
            "cli_version": self.cli_version,
            "history_mode": "flattened" if self.flatten_history else "transcript",
            "transcript_probe": self.probe_detail,
            "pool": self.pool.status(),
        }

    def resolve_model(self, requested: str | None) -> str:
        return resolve_model(requested, self.settings.default_model, self.settings.legacy_models)

    def _check(self, request: TurnRequest) -> None:
        """What no CLI turn could answer: raises InvalidRequest."""
        messages = request.messages
        if not messages or messages[-1].role != "user":
            raise InvalidRequest("The last message must be a user message.", param="messages")
        check_tool_specs(request.tools)
        check_history_calls(messages, request.tools)
        if _ends_with_tool_results(messages):
            if not request.tools or request.tool_choice == "none":
                # Results reach the model through the caller's tools (cli.client_tools).
                raise InvalidRequest(
                    "A request ending with tool results must also send its tools (and not tool_choice "
                    "\"none\"): the results reach the model through them.",
                    param="tools",
                )
            try:
                split_continuation(messages)
            except ValueError as exc:
                raise InvalidRequest(f"Invalid tool results: {exc}.", param="messages") from None

    async def stream(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """Run the request's turn; yields TextDelta/ToolCall events and one TurnDone.

        Closing the generator early (the client left) interrupts the CLI, which drops the
        upstream request, and the process is stopped rather than reused.
        """
        self._check(request)
        messages = request.messages
        profile = Profile(
            model=self.resolve_model(request.model),
            system=request.system,
            max_tokens=request.max_tokens,
            json_schema=Profile.schema_json(request.json_schema),
            tools_json=Profile.tools_of(request.tools),
            tools_offered=request.tool_choice != "none",
        )
        history, prompt = tuple(messages[:-1]), messages[-1]
        if _ends_with_tool_results(messages):
            # The CLI continues by itself from a transcript that ends with the results.
            history, prompt = tuple(messages), None
        elif self.flatten_history and history:
            history, prompt = (), _flatten(messages)
        waited = time.monotonic_ns()
        lease = await self.pool.acquire(profile, history, request.conversation_key)
        load_ns = time.monotonic_ns() - waited  # queueing plus any process start: Ollama's load_duration
        process = lease.process
        log.info("turn on CLI process %s (%s, %d earlier messages)", process.pid, lease.how, len(history))
        if self.settings.log_content and prompt is not None:  # off by default
            log.info("prompt: %r", prompt.text)
        stops = StopScanner(request.stop)
        completed = False
        try:
            turn = process.turn(
                prompt,
                client_tools=profile.tool_names.to_caller if profile.tools_offered else {},
                silence_timeout=self.settings.silence_timeout_seconds,
                turn_timeout=self.settings.turn_timeout_seconds,
            )
            try:
                async for event in turn:
                    if isinstance(event, TextDelta):
                        text = stops.feed(event.text)
                        if text:
                            yield TextDelta(text)
                        if stops.hit:
                            # The answer ends here; the CLI is interrupted in `finally`.
                            yield TurnDone(
                                "stop_sequence", process.partial_usage, profile.model, {"load_ns": load_ns}
                            )
                            return
                    elif isinstance(event, TurnDone):
                        tail = stops.flush()
                        if tail:
                            yield TextDelta(tail)
                        completed = True
                        yield dataclasses.replace(event, timings={**event.timings, "load_ns": load_ns})
                    elif isinstance(event, ToolCall):
                        yield event
            finally:
                await turn.aclose()
        finally:
            if self.settings.log_content and completed and process.history:
                log.info("answer: %r", process.history[-1].text)
            # After tool calls the caller's results come back in a new transcript, never on
            # this process's stdin: it is not held.
            called_tools = bool(process.history) and any(
                isinstance(block, ToolUseBlock) for block in process.history[-1].content
            )
            if completed and not stops.hit and not process.spoiled and not called_tools:
                self.pool.release(process, request.conversation_key)
            else:
                self.pool.discard(process, interrupt=True)


def _ends_with_tool_results(messages: list[Message]) -> bool:
    return bool(messages) and any(isinstance(block, ToolResultBlock) for block in messages[-1].content)


def _flatten(messages: list[Message]) -> Message:
    """The fallback for a CLI that cannot resume transcripts: one user message holding the
    conversation as labelled text. Images are kept; tool calls and results become text, since
    a user turn cannot carry tool_use blocks."""
    blocks: list = []
    for message in messages:
        blocks.append(TextBlock(f"{message.role.capitalize()}: "))
        for block in message.content:
            if isinstance(block, ToolUseBlock):
                blocks.append(TextBlock(f"[called tool {block.name} with {block.input_json}]"))
            elif isinstance(block, ToolResultBlock):
                result = "".join(part.text for part in block.content if isinstance(part, TextBlock))
                blocks.append(TextBlock(f"[tool result: {result}]"))
            else:
                blocks.append(block)
    return Message("user", tuple(blocks))


def _limits(settings: Settings) -> PoolLimits:
    return PoolLimits(
        max_processes=settings.max_processes,
        max_memory_bytes=settings.max_memory_mb * 1024 * 1024,
        spare_profiles=settings.spare_profiles,
        max_conversations=settings.max_conversations,
        conversation_idle_seconds=settings.conversation_idle_seconds,
        spare_idle_seconds=settings.spare_idle_seconds,
        queue_size=settings.queue_size,
        queue_timeout_seconds=settings.queue_timeout_seconds,
    )
