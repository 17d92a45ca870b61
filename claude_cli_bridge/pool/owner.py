"""The pool of CLI processes: the one owner of every process's lifetime.

Every live process is in exactly one state, kept in one ``Entry`` (``records``):

- ``starting``: being launched, for a waiting request or as a spare;
- ``spare``: launched for a profile, holding no history, ready for a turn (on workers a process
  given back after its turn is a spare again: the tap writes each turn's conversation);
- ``held``: idle, holding a conversation's history, waiting for its follow-up (without workers
  only: the ``held`` index);
- ``busy``: leased to a request;
- ``stopping``: retired, not yet exited (it still counts against ``max_processes``).

One task, ``_run``, owns all of this state: requests, lease returns, finished launches and
exits arrive as messages in its inbox and it alone changes the state, then grants what it
can (ollama's ``server/sched.go`` is the model). A request is served from a held process
whose history is exactly the request's, else (for a new conversation) a spare, else a new
process once there is room; room is made by retiring idle processes (unwanted spares
first, then the least recently used conversation). Requests that wait for room queue
first come, first served, in a queue of at most ``queue_size``; a full queue refuses at
once, whatever else is happening.

``async with pool.lease(profile, history, key) as lease:`` always gives the process back.
Whether it can serve again is the process's own verdict (``reusable``: it finished its turn,
was not cut short, did not end in a deferred tool call); the pool never second-guesses it.

Spares follow demand (``spares``): per profile, as many as the peak of concurrent new
conversations (on workers: turns) seen in the last ``spare_demand_window_seconds`` (at least one
for the ``spare_profiles`` most recent profiles), within free room. On workers a busy process
counts as the spare it becomes again, and one idle worker per profile stays until
``spare_idle_seconds``.

A process that exited (or whose pipes closed) is never leased: its watcher reports the exit
at once, and ``alive`` is checked again at the moment of granting. A process that dies by
itself before its first turn (before it printed anything, soon after launch) puts its
account into exponential backoff (``backoff``; 1 s doubling to ``backoff_max_seconds``; every profile of
the account at once, since the binary and the login are what fails; a profile that carries the
caller's own options, a schema or tools, pauses alone): meanwhile at most one launch for it is
in flight, no spares are relaunched, and requests that need a new
process get a 503 (``CliUnavailable``) with the CLI's own words and Retry-After. A process
killed from outside (SIGKILL, SIGTERM: the OOM killer, ``pkill``) is no failure of the CLI.
The first process of the account that speaks again ends the backoff: serving resumes
without a restart. ``snapshot().degraded`` says why while it lasts.

The launch function is injected, so the mechanics are tested with a stand-in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from typing import Generic

from ..cli.profile import Profile
from ..core.messages import Message
from ..core.status import PoolSnapshot, ProcessRow
from ..errors import BridgeError, CliCrashed, PoolBusy
from .placement import Placement
from .records import (
    Close,
    Died,
    Entry,
    Launch,
    Launched,
    Lease,
    P,
    PooledProcess,
    PoolLimits,
    Request,
    RetireAccount,
    Return,
    Spoke,
    Stopped,
    Submit,
    Tick,
    Withdraw,
    custom,
    fingerprint_of,
    new_conversation,
    scoped,
    total_rss,
)
from .state import PoolState

log = logging.getLogger("claude_cli_bridge.pool")


class Pool(Generic[P]):
    """The pool's public face: leases, status and the lifecycle of its owner task."""

    def __init__(self, launch: Launch[P], limits: PoolLimits, clock: Callable[[], float] = time.monotonic):
        self._state: PoolState[P] = PoolState(launch, limits, clock)
        self._place = Placement(self._state)
        self._owner = Owner(self._state, self._place)
        self._task: asyncio.Task[None] | None = None  # the owner's loop
        self._reaper: asyncio.Task[None] | None = None
        self.limits = limits
        self.counters = self._state.counters

    @property
    def workers(self) -> bool:
        """Every process is a worker (tap.inject): one given back after its turn is a spare."""
        return self._state.workers

    @workers.setter
    def workers(self, value: bool) -> None:
        self._state.workers = value

    @property
    def _waiting(self) -> deque[Request]:
        return self._state.waiting

    def start(self, warm_profiles: tuple[Profile, ...] | list[Profile] = ()) -> None:
        """Start the owner and the reaper; keep spares for ``warm_profiles``."""
        self._state.spares.warm(warm_profiles)
        self._task = asyncio.create_task(self._owner.run(), name="pool-owner")
        self._reaper = asyncio.create_task(self._owner.reap_forever(), name="pool-reaper")
        self._post(Tick())

    def retire_account(self, account: str) -> None:
        """Stop every process of ``account`` (its login changed or was removed): idle ones
        now, busy ones when their turn ends (the turn is not cut), launching ones when they
        are up; no spare is kept for it until a turn asks for it again."""
        self._post(RetireAccount(account))

    @contextlib.asynccontextmanager
    async def lease(
        self,
        profile: Profile,
        history: tuple[Message, ...],
        key: str | None = None,
        *,
        hold: bool = True,
        tenant: str = "",
        fresh: bool = False,
    ) -> AsyncIterator[Lease[P]]:
        """A process holding exactly ``history`` for ``profile``, given back on exit.

        ``tenant`` (a client key's name) owns the conversation: a held process serves only
        requests of the same tenant, whatever their history, and ``key`` (the client's
        conversation id) is looked up within the tenant.

        ``hold`` False: the turn is a one-off nobody continues (an Open WebUI title or tags
        task), so its process is not kept as a conversation afterwards: it would only take the
        room of spares and of conversations that do go on.

        ``fresh`` True: a process launched for this request, never an idle one (the retry of
        a turn whose process died: its siblings may have died with it, unseen yet).

        Raises PoolBusy when the queue is full or the wait exceeds ``queue_timeout_seconds``,
        CliCrashed when the CLI cannot be launched.
        """
        if self._task is None or self._state.closing:
            raise PoolBusy(
                "The server is shutting down." if self._state.closing else "The pool is not running.", retry_after=5
            )
        loop = asyncio.get_running_loop()
        if key is not None:
            key = scoped(tenant, key)
        request = Request(
            profile,
            history,
            fingerprint_of(tenant, history),
            key,
            loop.create_future(),
            self._state.clock(),
            tenant=tenant,
        )
        request.fresh = fresh
        self._post(Submit(request))
        try:
            async with asyncio.timeout(self.limits.queue_timeout_seconds):
                lease = await asyncio.shield(request.future)
        except TimeoutError:
            self._post(Withdraw(request))
            raise PoolBusy(
                f"All Claude CLI processes stayed busy for {self.limits.queue_timeout_seconds:.0f} s; retry shortly.",
                retry_after=5,
            ) from None
        except asyncio.CancelledError:
            self._post(Withdraw(request))  # a grant that raced the cancellation comes back
            raise
        try:
            yield lease
        finally:
            self._post(Return(lease.process, lease.key, hold))

    def holder(self, profile: Profile, history: tuple[Message, ...], tenant: str = "") -> str | None:
        """The account whose held process holds exactly ``history`` for ``tenant`` with this
        profile on some account (None: no process holds it). A read of the owner's state for
        the engine's choice of account; the lease itself decides."""
        return self._state.table.conversations.account_of(profile, fingerprint_of(tenant, history))

    @property
    def _entries(self) -> dict[int, Entry]:
        return self._state.table.entries

    @property
    def _held(self) -> OrderedDict[tuple[Profile, str], Entry]:
        return self._state.table.conversations.by_slot

    @property
    def _keys(self) -> dict[str, Entry]:
        return self._state.table.conversations.by_key

    def snapshot(self) -> PoolSnapshot:
        """Counts by state, memory, spares and their targets, the queue, backoff and counters
        (``core.status``)."""
        states = dict.fromkeys(("starting", "spare", "held", "busy", "stopping"), 0)
        for entry in self._state.table.entries.values():
            states[entry.state] += 1
        live = [e for e in self._state.table.entries.values() if e.process is not None and e.state != "stopping"]
        return PoolSnapshot(
            processes=len(live),  # launched and not stopping; "starting" and "stopping" apart
            **states,
            waiting=len(self._state.waiting),
            memory_mb=round(self._state.memory_bytes / 1024 / 1024, 1),
            spare_targets={
                p.model + (" (custom)" if custom(p) else ""): n for p, n in self._place.spare_targets().items()
            },
            pids=sorted(e.process.pid for e in live if e.process is not None and e.process.pid),
            models=sorted({e.profile.model for e in self._state.table.entries.values() if e.state != "stopping"}),
            backoff=self._state.backoff.snapshot(),
            counters=dict(self.counters),
            degraded=self.degraded(),
            # One row per process (the dashboard): state, model, turns, seconds since launch.
            process_list=[
                ProcessRow(
                    pid=e.process.pid if e.process is not None else None,
                    state=e.state,
                    model=e.profile.model + (" (custom)" if custom(e.profile) else ""),
                    turns=getattr(e.process, "turns", 0),  # turns answered (cli.process)
                    age_s=round(self._state.clock() - e.launched_at, 1) if e.launched_at else None,
                )
                for e in live
            ],
        )

    def degraded(self) -> list[str]:
        """Why the pool cannot launch processes right now (empty when it can): one line per
        account in backoff, with the CLI's own words."""
        return self._state.backoff.degraded()

    async def close(self, grace: float) -> None:
        """Refuse new work, let busy turns finish for ``grace`` seconds, then stop everything."""
        if self._task is None or self._task.done():
            return
        self._state.closing = True  # lease() refuses at once; the owner refuses what was queued
        loop = asyncio.get_running_loop()
        drained: asyncio.Future[None] = loop.create_future()
        self._post(Close(drained, force=False))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.shield(drained)
        gone: asyncio.Future[None] = loop.create_future()
        self._post(Close(gone, force=True))
        await gone
        for task in (self._task, self._reaper):
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in (self._task, self._reaper) if t is not None], return_exceptions=True)
        await self._state.table.cancel_all()

    async def settled(self) -> None:
        """Return once every message, launch and stop in flight has been handled."""
        while True:
            await asyncio.sleep(0)
            if self._state.table.tasks:
                await asyncio.gather(*list(self._state.table.tasks), return_exceptions=True)
                continue
            if self._state.inbox.empty():
                await asyncio.sleep(0)
                if self._state.inbox.empty() and not self._state.table.tasks:
                    return

    def _post(self, message: object) -> None:
        self._state.post(message)


class Owner(Generic[P]):
    """The owner task: every message that changes the pool's state is handled here, in order,
    then the decisions (``Placement``) grant what they can."""

    def __init__(self, state: PoolState[P], placement: Placement[P]) -> None:
        self._s = state
        self._place = placement

    async def run(self) -> None:
        while True:
            message = await self._s.inbox.get()
            self._handle(message)
            while not self._s.inbox.empty():
                self._handle(self._s.inbox.get_nowait())
            try:
                self._place.schedule()
                self._check_closed()
            except Exception:  # never let a bug stop the owner: requests would hang
                log.exception("pool scheduling failed")

    def _handle(self, message: object) -> None:
        try:
            if isinstance(message, Submit):
                self._on_submit(message.request)
            elif isinstance(message, Withdraw):
                self._on_withdraw(message.request)
            elif isinstance(message, Return):
                self._on_return(message.process, message.key, message.hold)
            elif isinstance(message, Launched):
                self._on_launched(message)
            elif isinstance(message, Died):
                self._on_died(message.entry)
            elif isinstance(message, Stopped):
                self._s.table.forget(message.entry)
            elif isinstance(message, Tick):
                self._on_tick(message)
            elif isinstance(message, Spoke):
                entry = self._s.table.entry_of(message.process)
                if entry is not None:
                    entry.first_output_due = 0.0
            elif isinstance(message, RetireAccount):
                self._on_retire_account(message.account)
            elif isinstance(message, Close):
                self._on_close(message)
        except Exception:
            log.exception("pool message %s failed", type(message).__name__)

    def _on_submit(self, request: Request) -> None:
        if self._s.closing:
            self._place.refuse(request, PoolBusy("The server is shutting down.", retry_after=5))
            return
        self._s.spares.used(request.profile)
        if request.key is not None:
            self._place.drop_diverged(request.key, request.profile, request.fingerprint)
        if self._place.serve_idle(request):
            return
        queued = sum(1 for r in self._s.waiting if not r.launching)
        if not queued and self._place.has_room() and self._s.backoff.refusal(request.profile) is None:
            request.launching = True  # room now and nobody ahead: no queueing at all
            self._s.waiting.append(request)
            self._place.start_launch(request.profile, request.history, request)
            return
        if queued >= self._s.limits.queue_size:
            self._s.counters["busy_refusals"] += 1
            full = PoolBusy("All Claude CLI processes are busy and the queue is full; retry shortly.", retry_after=2)
            self._place.refuse(request, full)
            return
        request.queued = True
        self._s.waiting.append(request)

    def _on_withdraw(self, request: Request) -> None:
        if request in self._s.waiting:
            self._s.waiting.remove(request)
        future = request.future
        if future.done() and not future.cancelled() and future.exception() is None:
            # Granted just as the caller gave up: nothing ran, so the process is as it was.
            self._on_return(future.result().process, None)
        elif not future.done():
            future.cancel()

    def _on_return(self, process: PooledProcess, key: str | None, hold: bool = True) -> None:
        entry = self._s.table.entry_of(process)
        if entry is None or entry.state != "busy":
            return
        if new_conversation(entry.history):
            self._s.spares.ended(entry.profile)
        if self._s.closing or not process.reusable or self._outdated(entry):
            if not process.alive:
                self._place.note_early_death(entry)  # before the retry's request is handled (FIFO)
            self._s.table.retire(entry)
            return
        self._s.backoff.worked(entry.profile, entry.launch_began)  # launched since the last failure, and it served
        entry.served = True
        entry.history = process.history
        if new_conversation(entry.history):  # given back unused: still a spare
            entry.state, entry.idle_since = "spare", self._s.clock()
        elif hold:
            self._place.make_held(entry, key)
        else:
            self._s.table.retire(entry)

    def _on_launched(self, message: Launched) -> None:
        entry, request = message.entry, message.entry.for_request
        entry.for_request = None
        if message.process is None:
            self._s.counters["launch_failures"] += 1
            del self._s.table.entries[entry.id]
            error = message.error
            detail = error.message if isinstance(error, BridgeError) else str(error)
            if not (isinstance(error, BridgeError) and error.status < 500):  # not the request's own fault
                self._place.note_failure(entry.profile, detail, entry.launch_began)
                log.warning("could not launch a CLI process: %s", detail)
            else:  # the request's own fault: its message may quote the caller (no caller text in logs)
                log.info("could not launch a CLI process for a request: %s", getattr(error, "code", None))
            if request is not None and not request.future.done():
                if request in self._s.waiting:
                    self._s.waiting.remove(request)
                self._place.refuse(request, error if isinstance(error, BridgeError) else CliCrashed(
                    f"The Claude CLI could not be started: {detail}"))  # fmt: skip
            return
        self._s.counters["launched"] += 1
        self._s.table.launched(entry, message.process, self._s.clock())
        if self._s.closing or (self._outdated(entry) and request is None):
            entry.state = "spare"
            self._s.table.retire(entry)
        elif request is not None and not request.future.done() and request in self._s.waiting:
            self._s.waiting.remove(request)
            self._place.grant(request, entry, "cold")
        elif new_conversation(entry.history):
            entry.state, entry.idle_since = "spare", self._s.clock()
        else:  # launched for a request that left: keep it for the same history
            self._place.make_held(entry, None)

    def _on_died(self, entry: Entry) -> None:
        """A process exited by itself. An idle one is retired (which removes its leftovers);
        a busy one's turn fails by itself and comes back unusable. Dying soon after launch,
        before the CLI said anything, is a failure to launch."""
        if entry.state == "stopping":
            return
        self._place.note_early_death(entry)
        if entry.state in ("spare", "held"):
            self._s.table.retire(entry)

    def _on_retire_account(self, account: str) -> None:
        self._s.generations[account] = self._s.generations.get(account, 0) + 1
        self._s.spares.forget(account)
        for entry in list(self._s.table.entries.values()):
            if entry.profile.account == account and entry.state in ("spare", "held"):
                self._s.table.retire(entry)

    def _outdated(self, entry: Entry) -> bool:
        """Launched with a login of its account that has since changed or gone."""
        return entry.generation != self._s.generations.get(entry.profile.account, 0)

    def _on_close(self, close: Close) -> None:
        self._s.closing = True
        for request in list(self._s.waiting):
            self._s.waiting.remove(request)
            self._place.refuse(request, PoolBusy("The server is shutting down.", retry_after=5))
        for entry in list(self._s.table.entries.values()):
            if entry.state in ("spare", "held") or (close.force and entry.state == "busy"):
                self._s.table.retire(entry)
        self._s.close_waiters.append(close)

    def _check_closed(self) -> None:
        if not self._s.close_waiters:
            return
        busy = any(e.state in ("busy", "starting") for e in self._s.table.entries.values())
        for close in list(self._s.close_waiters):
            if (close.force and not self._s.table.entries) or (not close.force and not busy):
                self._s.close_waiters.remove(close)
                if not close.done.done():
                    close.done.set_result(None)

    def _on_tick(self, tick: Tick) -> None:
        if tick.memory_bytes is not None:
            self._s.memory_bytes = tick.memory_bytes
        now = self._s.clock()
        targets = self._place.spare_targets()
        for entry in list(self._s.table.entries.values()):
            if entry.state == "spare":
                idle = self._s.table.count("spare", entry.profile) + self._place.returning(entry.profile)
                # A worker is any conversation's next turn: one per profile stays until idle.
                surplus = idle > max(targets.get(entry.profile, 0), 1 if self._s.workers else 0)
                if now - entry.idle_since > self._s.limits.spare_idle_seconds or surplus:
                    self._s.table.retire(entry)
            elif entry.state == "held" and now - entry.idle_since > self._s.limits.conversation_idle_seconds:
                self._s.table.retire(entry)
        while self._s.memory_bytes > self._s.limits.max_memory_bytes and self._place.evict_one():
            self._s.memory_bytes -= self._s.memory_bytes // max(1, self._s.table.live_count())

    async def reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self._s.limits.reap_interval_seconds)
            processes = [e.process for e in self._s.table.entries.values() if e.process is not None]
            self._s.post(Tick(await asyncio.to_thread(total_rss, processes)))
