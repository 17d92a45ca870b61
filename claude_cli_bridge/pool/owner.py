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
without a restart. ``status()["degraded"]`` says why while it lasts.

The launch function is injected, so the mechanics are tested with a stand-in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic

from ..cli.profile import Profile
from ..core.messages import Message
from ..errors import BridgeError, CliCrashed, PoolBusy
from .backoff import LaunchBackoff
from .records import (
    KILLED,
    SPARES_WAIT_FOR_FIRST_OUTPUT_SECONDS,
    Close,
    Died,
    Entry,
    Launch,
    Launched,
    Lease,
    Obtained,
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
    new_conversation_id,
    scoped,
    total_rss,
)
from .spares import SpareDemand
from .table import ProcessTable

log = logging.getLogger("claude_cli_bridge.pool")


class Pool(Generic[P]):
    def __init__(self, launch: Launch[P], limits: PoolLimits, clock: Callable[[], float] = time.monotonic):
        self._launch = launch
        self.limits = limits
        self._clock = clock
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._table = ProcessTable(self._post)
        self._waiting: deque[Request] = deque()
        self._spares = SpareDemand(
            clock, limits.spare_demand_window_seconds, limits.spare_profiles, limits.max_spares_per_profile
        )
        self._backoff = LaunchBackoff(clock, limits.backoff_max_seconds, self._table.launching)
        self._memory_bytes = 0
        self._owner: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._closing = False
        self._close_waiters: list[Close] = []
        self._generations: dict[str, int] = {}  # account -> login generation (retire_account)
        # Workers (tap.inject): a process given back after a turn is a spare again, so a busy
        # one counts towards its profile's spares (else each turn would launch a replacement
        # and each tick retire the surplus).
        self.workers = False
        self.counters = {"held": 0, "spare": 0, "cold": 0, "busy_refusals": 0, "evictions": 0, "launched": 0,
                         "launch_failures": 0}  # fmt: skip

    # -- public ----------------------------------------------------------------------
    def start(self, warm_profiles: tuple[Profile, ...] | list[Profile] = ()) -> None:
        """Start the owner and the reaper; keep spares for ``warm_profiles``."""
        self._spares.warm(warm_profiles)
        self._owner = asyncio.create_task(self._run(), name="pool-owner")
        self._reaper = asyncio.create_task(self._reap_forever(), name="pool-reaper")
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
        if self._owner is None or self._closing:
            raise PoolBusy(
                "The server is shutting down." if self._closing else "The pool is not running.", retry_after=5
            )
        loop = asyncio.get_running_loop()
        if key is not None:
            key = scoped(tenant, key)
        request = Request(
            profile, history, fingerprint_of(tenant, history), key, loop.create_future(), self._clock(), tenant=tenant
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
        return self._table.conversations.account_of(profile, fingerprint_of(tenant, history))

    @property
    def _entries(self) -> dict[int, Entry]:
        return self._table.entries

    @property
    def _held(self) -> OrderedDict[tuple[Profile, str], Entry]:
        return self._table.conversations.by_slot

    @property
    def _keys(self) -> dict[str, Entry]:
        return self._table.conversations.by_key

    def status(self) -> dict[str, Any]:
        """Counts by state, memory, spares and their targets, the queue, backoff and counters."""
        states = dict.fromkeys(("starting", "spare", "held", "busy", "stopping"), 0)
        for entry in self._table.entries.values():
            states[entry.state] += 1
        live = [e for e in self._table.entries.values() if e.process is not None and e.state != "stopping"]
        return {
            "processes": len(live),  # launched and not stopping; "starting" and "stopping" apart
            **states,
            "spares": states["spare"],
            "waiting": len(self._waiting),
            "memory_mb": round(self._memory_bytes / 1024 / 1024, 1),
            "spare_targets": {
                p.model + (" (custom)" if custom(p) else ""): n for p, n in self._spare_targets().items()
            },
            "pids": sorted(e.process.pid for e in live if e.process is not None and e.process.pid),
            "models": sorted({e.profile.model for e in self._table.entries.values() if e.state != "stopping"}),
            "backoff": self._backoff.status(),
            "counters": dict(self.counters),
            "degraded": self.degraded(),
            # One row per process (the dashboard): state, model, turns, seconds since launch.
            "process_list": [
                {
                    "pid": e.process.pid if e.process is not None else None,
                    "state": e.state,
                    "model": e.profile.model + (" (custom)" if custom(e.profile) else ""),
                    "turns": getattr(e.process, "turns", 0),  # turns answered (cli.process)
                    "age_s": round(self._clock() - e.launched_at, 1) if e.launched_at else None,
                }
                for e in live
            ],
        }

    def degraded(self) -> list[str]:
        """Why the pool cannot launch processes right now (empty when it can): one line per
        account in backoff, with the CLI's own words."""
        return self._backoff.degraded()

    async def close(self, grace: float) -> None:
        """Refuse new work, let busy turns finish for ``grace`` seconds, then stop everything."""
        if self._owner is None or self._owner.done():
            return
        self._closing = True  # lease() refuses at once; the owner refuses what was queued
        loop = asyncio.get_running_loop()
        drained: asyncio.Future[None] = loop.create_future()
        self._post(Close(drained, force=False))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.shield(drained)
        gone: asyncio.Future[None] = loop.create_future()
        self._post(Close(gone, force=True))
        await gone
        for task in (self._owner, self._reaper):
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in (self._owner, self._reaper) if t is not None], return_exceptions=True)
        await self._table.cancel_all()

    async def settled(self) -> None:
        """Return once every message, launch and stop in flight has been handled."""
        while True:
            await asyncio.sleep(0)
            if self._table.tasks:
                await asyncio.gather(*list(self._table.tasks), return_exceptions=True)
                continue
            if self._inbox.empty():
                await asyncio.sleep(0)
                if self._inbox.empty() and not self._table.tasks:
                    return

    # -- the owner ---------------------------------------------------------------------
    def _post(self, message: object) -> None:
        self._inbox.put_nowait(message)

    async def _run(self) -> None:
        while True:
            message = await self._inbox.get()
            self._handle(message)
            while not self._inbox.empty():
                self._handle(self._inbox.get_nowait())
            try:
                self._schedule()
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
                self._table.forget(message.entry)
            elif isinstance(message, Tick):
                self._on_tick(message)
            elif isinstance(message, Spoke):
                entry = self._table.entry_of(message.process)
                if entry is not None:
                    entry.first_output_due = 0.0
            elif isinstance(message, RetireAccount):
                self._on_retire_account(message.account)
            elif isinstance(message, Close):
                self._on_close(message)
        except Exception:
            log.exception("pool message %s failed", type(message).__name__)

    def _on_submit(self, request: Request) -> None:
        if self._closing:
            self._refuse(request, PoolBusy("The server is shutting down.", retry_after=5))
            return
        self._spares.used(request.profile)
        if request.key is not None:
            self._drop_diverged(request.key, request.profile, request.fingerprint)
        if self._serve_idle(request):
            return
        queued = sum(1 for r in self._waiting if not r.launching)
        if not queued and self._has_room() and self._backoff.refusal(request.profile) is None:
            request.launching = True  # room now and nobody ahead: no queueing at all
            self._waiting.append(request)
            self._start_launch(request.profile, request.history, request)
            return
        if queued >= self.limits.queue_size:
            self.counters["busy_refusals"] += 1
            self._refuse(request, PoolBusy("All Claude CLI processes are busy and the queue is full; retry shortly.",
                                           retry_after=2))  # fmt: skip
            return
        request.queued = True
        self._waiting.append(request)

    def _on_withdraw(self, request: Request) -> None:
        if request in self._waiting:
            self._waiting.remove(request)
        future = request.future
        if future.done() and not future.cancelled() and future.exception() is None:
            # Granted just as the caller gave up: nothing ran, so the process is as it was.
            self._on_return(future.result().process, None)
        elif not future.done():
            future.cancel()

    def _on_return(self, process: PooledProcess, key: str | None, hold: bool = True) -> None:
        entry = self._table.entry_of(process)
        if entry is None or entry.state != "busy":
            return
        if new_conversation(entry.history):
            self._spares.ended(entry.profile)
        if self._closing or not process.reusable or self._outdated(entry):
            if not process.alive:
                self._note_early_death(entry)  # before the retry's request is handled (FIFO)
            self._table.retire(entry)
            return
        self._backoff.worked(entry.profile, entry.launch_began)  # launched since the last failure, and it served
        entry.served = True
        entry.history = process.history
        if new_conversation(entry.history):  # given back unused: still a spare
            entry.state, entry.idle_since = "spare", self._clock()
        elif hold:
            self._make_held(entry, key)
        else:
            self._table.retire(entry)

    def _on_launched(self, message: Launched) -> None:
        entry, request = message.entry, message.entry.for_request
        entry.for_request = None
        if message.process is None:
            self.counters["launch_failures"] += 1
            del self._table.entries[entry.id]
            error = message.error
            detail = error.message if isinstance(error, BridgeError) else str(error)
            if not (isinstance(error, BridgeError) and error.status < 500):  # not the request's own fault
                self._note_failure(entry.profile, detail, entry.launch_began)
                log.warning("could not launch a CLI process: %s", detail)
            else:  # the request's own fault: its message may quote the caller (no caller text in logs)
                log.info("could not launch a CLI process for a request: %s", getattr(error, "code", None))
            if request is not None and not request.future.done():
                if request in self._waiting:
                    self._waiting.remove(request)
                self._refuse(request, error if isinstance(error, BridgeError) else CliCrashed(
                    f"The Claude CLI could not be started: {detail}"))  # fmt: skip
            return
        self.counters["launched"] += 1
        self._table.launched(entry, message.process, self._clock())
        if self._closing or (self._outdated(entry) and request is None):
            entry.state = "spare"
            self._table.retire(entry)
        elif request is not None and not request.future.done() and request in self._waiting:
            self._waiting.remove(request)
            self._grant(request, entry, "cold")
        elif new_conversation(entry.history):
            entry.state, entry.idle_since = "spare", self._clock()
        else:  # launched for a request that left: keep it for the same history
            self._make_held(entry, None)

    def _on_died(self, entry: Entry) -> None:
        """A process exited by itself. An idle one is retired (which removes its leftovers);
        a busy one's turn fails by itself and comes back unusable. Dying soon after launch,
        before the CLI said anything, is a failure to launch."""
        if entry.state == "stopping":
            return
        self._note_early_death(entry)
        if entry.state in ("spare", "held"):
            self._table.retire(entry)

    def _note_early_death(self, entry: Entry) -> None:
        """A process that exited by itself before it ever spoke, soon after launch, failed to
        launch. One killed from outside did not: that is the OOM killer or a user, and the
        CLI would start fine again (no backoff, no refusals)."""
        process = entry.process
        if entry.failure_noted or process is None or entry.served or process.started:
            return
        if self._clock() - entry.launched_at >= self.limits.early_death_seconds:
            return
        code = getattr(process, "exit_code", None)
        if code is None and hasattr(process, "exit_code") and process.pid is not None:
            return  # not reaped yet: decided when its watcher reports the exit
        if code in KILLED:
            return
        if getattr(process, "callers_fault", False):
            return  # the request's own options (an invalid schema): a 400 for it, no failure of the CLI
        entry.failure_noted = True
        self._note_failure(entry.profile, process.failure(), entry.launch_began)

    def _on_retire_account(self, account: str) -> None:
        self._generations[account] = self._generations.get(account, 0) + 1
        self._spares.forget(account)
        for entry in list(self._table.entries.values()):
            if entry.profile.account == account and entry.state in ("spare", "held"):
                self._table.retire(entry)

    def _outdated(self, entry: Entry) -> bool:
        """Launched with a login of its account that has since changed or gone."""
        return entry.generation != self._generations.get(entry.profile.account, 0)

    def _on_close(self, close: Close) -> None:
        self._closing = True
        for request in list(self._waiting):
            self._waiting.remove(request)
            self._refuse(request, PoolBusy("The server is shutting down.", retry_after=5))
        for entry in list(self._table.entries.values()):
            if entry.state in ("spare", "held") or (close.force and entry.state == "busy"):
                self._table.retire(entry)
        self._close_waiters.append(close)

    def _check_closed(self) -> None:
        if not self._close_waiters:
            return
        busy = any(e.state in ("busy", "starting") for e in self._table.entries.values())
        for close in list(self._close_waiters):
            if (close.force and not self._table.entries) or (not close.force and not busy):
                self._close_waiters.remove(close)
                if not close.done.done():
                    close.done.set_result(None)

    def _on_tick(self, tick: Tick) -> None:
        if tick.memory_bytes is not None:
            self._memory_bytes = tick.memory_bytes
        now = self._clock()
        targets = self._spare_targets()
        for entry in list(self._table.entries.values()):
            if entry.state == "spare":
                idle = self._table.count("spare", entry.profile) + self._returning(entry.profile)
                # A worker is any conversation's next turn: one per profile stays until idle.
                surplus = idle > max(targets.get(entry.profile, 0), 1 if self.workers else 0)
                if now - entry.idle_since > self.limits.spare_idle_seconds or surplus:
                    self._table.retire(entry)
            elif entry.state == "held" and now - entry.idle_since > self.limits.conversation_idle_seconds:
                self._table.retire(entry)
        while self._memory_bytes > self.limits.max_memory_bytes and self._evict_one():
            self._memory_bytes -= self._memory_bytes // max(1, self._table.live_count())

    # -- decisions ---------------------------------------------------------------------
    def _schedule(self) -> None:
        """Grant what can be granted, launch or make room for the head of the queue, and
        keep spares at their targets with the room nobody waits for."""
        self._end_recovered_backoffs()
        for request in list(self._waiting):
            if request.future.done() or self._serve_idle(request):
                self._waiting.remove(request)
        needing_room = [r for r in self._waiting if not r.launching]
        for request in needing_room:  # first come, first served
            failure = self._backoff.refusal(request.profile)
            if failure is not None:
                self._waiting.remove(request)
                self._refuse(request, failure)
                continue
            if self._has_room():
                request.launching = True
                self._start_launch(request.profile, request.history, request)
                continue
            if self._table.count("stopping") < len([r for r in self._waiting if not r.launching]):
                self._evict_one()
            break
        if not any(not r.launching for r in self._waiting):
            self._fill_spares()

    def _serve_idle(self, request: Request) -> bool:
        """Grant a held process with exactly this history, or a spare for a new conversation."""
        if request.future.done() or request.fresh:
            return False
        held = self._table.conversations.take(request.profile, request.fingerprint)
        if held is not None:
            if held.process is not None and held.process.alive:
                self._grant(request, held, "held")
                return True
            self._retire_dead(held)
        if new_conversation(request.history):
            spares = [e for e in self._table.entries.values() if e.state == "spare" and e.profile == request.profile]
            for spare in sorted(spares, key=lambda e: e.idle_since):
                if spare.process is not None and spare.process.alive:
                    self._grant(request, spare, "spare")
                    return True
                self._retire_dead(spare)
        return False

    def _grant(self, request: Request, entry: Entry, how: Obtained) -> None:
        # The id the conversation keeps (returned as X-Conversation-Id): sending it back, or
        # the same history, finds this process again.
        key = request.key or entry.key or scoped(request.tenant, new_conversation_id())
        self._table.conversations.release_key(entry)
        entry.state, entry.tenant = "busy", request.tenant
        if new_conversation(request.history):
            self._spares.began(request.profile)
        self.counters[how] += 1
        assert entry.process is not None and not request.future.done()
        public = key[len(request.tenant) + 1 :] if request.tenant else key
        lease = Lease(entry.process, how, self._clock() - request.submitted, request.queued, key, public)
        if how != "held":
            # The first turn of a process that never answered (a spare's, a cold start's) is
            # the one a launch beside it slows most: spares wait until it speaks (bounded).
            entry.first_output_due = self._clock() + SPARES_WAIT_FOR_FIRST_OUTPUT_SECONDS
            process = entry.process
            lease._spoke = lambda: self._post(Spoke(process))
            asyncio.get_running_loop().call_later(SPARES_WAIT_FOR_FIRST_OUTPUT_SECONDS, self._post, Tick())
        request.future.set_result(lease)

    def _make_held(self, entry: Entry, key: str | None) -> None:
        entry.state, entry.idle_since = "held", self._clock()
        entry.fingerprint = fingerprint_of(entry.tenant, entry.history)
        for replaced in self._table.conversations.hold(entry, key):
            self._table.retire(replaced)
        while len(self._table.conversations) > self.limits.max_conversations:
            oldest = self._table.conversations.oldest()
            assert oldest is not None
            self.counters["evictions"] += 1
            self._table.retire(oldest)

    def _drop_diverged(self, key: str, profile: Profile, fingerprint: str) -> None:
        """A conversation id whose held process holds another history has diverged (edited,
        regenerated, trimmed): that process can never match again."""
        entry = self._table.conversations.diverged(key, profile, fingerprint)
        if entry is not None:
            self._table.retire(entry)

    def _has_room(self) -> bool:
        """Whether one more process fits. Processes still stopping count: they are alive
        until they exit, and MAX_PROCESSES bounds live processes."""
        if len(self._table.entries) >= self.limits.max_processes:
            return False
        per_process = self._memory_bytes / max(1, self._table.live_count())
        return self._memory_bytes + per_process * self._table.count("starting") < self.limits.max_memory_bytes

    def _evict_one(self) -> bool:
        """Retire one idle process to make room: spares beyond their profile's target, then
        any spare, then the least recently used conversation. False if none is idle."""
        targets = self._spare_targets()
        spares = [e for e in self._table.entries.values() if e.state == "spare"]
        spares.sort(key=lambda e: (self._table.count("spare", e.profile) <= targets.get(e.profile, 0), e.idle_since))
        if spares:
            self.counters["evictions"] += 1
            self._table.retire(spares[0])
            return True
        oldest = self._table.conversations.oldest()
        if oldest is not None:
            self.counters["evictions"] += 1
            self._table.retire(oldest)
            return True
        return False

    # -- spares --------------------------------------------------------------------------
    def _spare_targets(self) -> dict[Profile, int]:
        return self._spares.targets()

    def _fill_spares(self) -> None:
        """Launch spares up to their targets with free room; the most recent profile's first
        spare may retire the least recently used idle conversation (a new conversation is
        likelier than the return of the oldest one).

        While turns run, only a profile with no spare at all gets one: a launch costs about as
        much CPU as a first turn, and on few cores replacements launched during a burst slow
        the burst's own turns (bench/bench_pool.py: p95 2.6 s against 1.5 s for 8 new
        conversations). The rest follow as soon as no turn runs. And none launches while the
        first turn of a process that never answered (a spare taken, a cold start) has not
        produced its first output yet, for at most SPARES_WAIT_FOR_FIRST_OUTPUT_SECONDS."""
        if self._closing:
            return
        now = self._clock()
        if any(e.state == "busy" and e.first_output_due > now for e in self._table.entries.values()):
            return  # a new process's first turn has not spoken yet (see _grant)
        turns_running = any(entry.state == "busy" for entry in self._table.entries.values())
        recent = self._spares.latest()
        last_use = self._spares.recent
        for profile, wanted in sorted(self._spare_targets().items(), key=lambda item: -last_use.get(item[0], 0)):
            if self._backoff.refusal(profile) is not None:
                continue
            target = min(wanted, 1) if turns_running else wanted
            if self._backoff.touches(profile):
                target = min(target, 1)  # after failures: one attempt at a time, no spawn loop
            while (
                self._table.count("spare", profile) + self._table.launching_spares(profile) + self._returning(profile)
                < target
            ):
                if not self._has_room():
                    first_of_latest = recent and profile == recent[-1] and self._table.count("spare", profile) == 0
                    if (
                        first_of_latest
                        and not self._table.launching_spares(profile)
                        and not self._table.count("stopping")
                    ):
                        oldest = self._table.conversations.oldest()
                        if oldest is not None:
                            self.counters["evictions"] += 1
                            self._table.retire(oldest)
                    return
                self._start_launch(profile, (), None)

    def _returning(self, profile: Profile) -> int:
        """Busy workers of the profile: each comes back as a spare after its turn."""
        return self._table.returning(profile) if self.workers else 0

    # -- launching, retiring, watching -----------------------------------------------------
    def _start_launch(self, profile: Profile, history: tuple[Message, ...], request: Request | None) -> None:
        entry = Entry(profile, history, for_request=request, launch_began=self._clock(),
                      generation=self._generations.get(profile.account, 0))  # fmt: skip
        self._table.add(entry)

        async def launch() -> None:
            try:
                process = await self._launch(profile, history, request is None)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                self._post(Launched(entry, None, exc))
            else:
                self._post(Launched(entry, process, None))

        self._table.spawn(launch())

    def _retire_dead(self, entry: Entry) -> None:
        """Retire an idle process found dead before its watcher reported it: a spare handed
        back dead by its launch (its warm-up's early exit) still counts as a failed launch,
        or a request arriving first would launch again at once instead of backing off."""
        self._note_early_death(entry)
        self._table.retire(entry)

    # -- failures ------------------------------------------------------------------------
    def _note_failure(self, profile: Profile, detail: str, launch_began: float) -> None:
        delay = self._backoff.failed(profile, detail, launch_began)
        if delay is not None:
            asyncio.get_running_loop().call_later(delay, self._post, Tick())

    def _end_recovered_backoffs(self) -> None:
        """A process of a backed-off profile that printed its protocol launched fine: the CLI
        works again (a fixed binary), so serving resumes without waiting for a turn."""
        if not self._backoff:
            return
        for entry in self._table.entries.values():
            process = entry.process
            if process is not None and process.started and process.alive:
                self._backoff.worked(entry.profile, entry.launch_began)  # (only what failed before)

    def _refuse(self, request: Request, error: BaseException) -> None:
        if not request.future.done():
            request.future.set_exception(error)
            request.future.exception()  # retrieved: a caller that left must not log it

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.limits.reap_interval_seconds)
            processes = [e.process for e in self._table.entries.values() if e.process is not None]
            self._post(Tick(await asyncio.to_thread(total_rss, processes)))

    # -- counting --------------------------------------------------------------------------
