"""A turn on one account: lease a process of the turn's profile, run the turn on it, and run
it once more on a fresh process if the first died before any output (``BridgeEngine.stream``
decides about other accounts).

On workers the leased process gets a one-line placeholder prompt and the tap writes the
caller's conversation into its upstream request (``cli.worker.assignment_for``,
``tap.inject``); without workers the process holds the plan's history and the prompt is the
newest message. What the run adds to the CLI's events: stop sequences (the CLI has no flag
for them), ``tool_choice: required`` enforced, remembered thinking after a tool call, the
windows the CLI reports (``accounts.book``) and the load time Ollama reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator
from typing import Any

from ..accounts.book import AccountBook
from ..cli.process import CliProcess
from ..cli.profile import Profile
from ..cli.worker import assignment_for
from ..core.limits import RateLimitInfo
from ..core.messages import Message, TextBlock
from ..core.record import note
from ..core.stops import StopScanner
from ..core.turn import TextDelta, ToolCall, TurnDone, TurnEvent
from ..errors import CliCrashed, CliUnavailable, UpstreamError
from ..pool import Pool
from ..settings import Settings
from ..tap import Tap
from .plan import TurnPlan
from .thinking import ThinkingMemory

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TurnRunner:
    """What a turn runs with: the pool, the tap (None: off), the thinking memory, the account
    book, the settings, and whether processes are workers."""

    pool: Pool[CliProcess]
    tap: Tap | None
    thinking: ThinkingMemory
    book: AccountBook
    settings: Settings
    workers: bool

    async def on_account(self, plan: TurnPlan, profile: Profile) -> AsyncGenerator[TurnEvent, None]:
        """The turn on ``profile``'s account: once more on a fresh process if its process died
        before any output (``stream`` decides about other accounts)."""
        for attempt in range(2):
            leased: list[Any] = []  # the attempt's process, to tell a death from other failures
            sent = False
            try:
                async with contextlib.aclosing(
                    self._attempt(plan, profile, fresh=attempt > 0, leased=leased)
                ) as events:
                    async for event in events:
                        sent = True
                        yield event
                return
            except CliCrashed as error:
                died = bool(leased) and not leased[0].alive
                if died and attempt and not sent and not getattr(leased[0], "started", True):
                    # The retry's process too exited before it ever spoke: the CLI fails to
                    # start (a broken binary). That is the pool's 503, whichever process the
                    # race between a death and its backoff let through.
                    raise CliUnavailable(
                        f"The Claude CLI fails to start: {leased[0].failure() or 'it exited at once'}", retry_after=1
                    ) from error
                if sent or attempt or not died:
                    raise
                log.warning("CLI process %s died before its turn's first output; retrying on a new one", leased[0].pid)

    async def _attempt(
        self, plan: TurnPlan, profile: Profile, *, fresh: bool, leased: list[Any]
    ) -> AsyncGenerator[TurnEvent, None]:
        """One try at the turn on one leased process (``on_account`` decides about retrying)."""
        request, caller, history, prompt, messages = plan.request, plan.caller, plan.history, plan.prompt, plan.messages
        hold = not request.one_off and not self.workers
        lease_of = self.pool.lease(
            profile, history, request.conversation_key, hold=hold, fresh=fresh, tenant=caller.tenant
        )
        async with lease_of as lease:
            process = lease.process
            leased.append(process)
            load_ns = int(lease.waited * 1e9)  # queueing plus any launch: Ollama's load_duration
            how = lease.how + (" queued" if lease.queued else "")
            # Before the first byte: the response's X-Conversation-Id and X-Bridge-Process
            # (observe/middleware.py) come from the request's record.
            note(conversation_id=lease.conversation_id or "", how=how)
            # The request's own log line (observe/requestlog.py) names model, timings and tokens;
            # the process id is for debugging (and with LOG_CONTENT it precedes the prompt).
            log.log(
                logging.INFO if self.settings.log_content else logging.DEBUG,
                "turn on CLI process %s (%s, %d earlier messages)",
                process.pid,
                how,
                len(history),
            )
            if self.settings.log_content and messages:  # off by default
                log.info("prompt: %r", messages[-1].text)
            stops = StopScanner(request.stop)
            called = False
            client_tools = profile.tool_names.to_caller if profile.tools_offered else {}
            token = getattr(process, "tap_token", None)
            if self.workers:
                if token is None or self.tap is None:
                    raise CliCrashed("internal: a worker without its tap URL was leased")
                assignment, client_tools = assignment_for(request, messages)
                prompt = Message("user", (TextBlock(assignment.marker),))
                self.tap.assign(token, assignment)
            turn = process.turn(
                prompt,
                client_tools=client_tools,
                silence_timeout=self.settings.silence_timeout_seconds,
                turn_timeout=self.settings.turn_timeout_seconds,
            )
            try:
                async for event in turn:
                    lease.first_output()  # spares held back for this turn may launch (pool._fill_spares)
                    if isinstance(event, TextDelta):
                        text = stops.feed(event.text)
                        if text:
                            yield TextDelta(text)
                        if stops.hit:  # the answer ends here; the open turn is stopped with the process
                            yield TurnDone(
                                "stop_sequence",
                                process.partial_usage,
                                profile.model,
                                {"load_ns": load_ns},
                                stop_sequence=stops.matched,
                                how=how,
                            )
                            return
                    elif isinstance(event, TurnDone):
                        tail = stops.flush()
                        if tail:
                            yield TextDelta(tail)
                        if request.tool_choice == "required" and not called and event.stop_reason != "max_tokens":
                            raise UpstreamError(
                                "tool_choice required a tool call, but the model answered without one "
                                f"(stop reason {event.stop_reason!r}).",
                                status=502,
                            )
                        answer = process.last_answer
                        if called and answer is not None:
                            self.thinking.remember(answer, caller.tenant)
                        if self.settings.log_content and answer is not None:
                            log.info("answer: %r", answer.text)
                        yield dataclasses.replace(event, timings={**event.timings, "load_ns": load_ns}, how=how)
                    elif isinstance(event, RateLimitInfo):
                        self.book.read(profile.account, event)  # for /health, /metrics, the dashboard
                    else:
                        called = called or isinstance(event, ToolCall)
                        yield event
            finally:
                await turn.aclose()
                if self.workers and token is not None and self.tap is not None:
                    self.tap.release(token)
