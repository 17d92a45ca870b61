"""The pool of CLI processes: the one owner of every process's lifetime.

Every live process is in exactly one state, kept in one ``_Entry``:

- ``starting``: being launched, for a waiting request or as a spare;
- ``spare``: launched for a profile, holding no history, ready for a new conversation;
- ``held``: idle, holding a conversation's history, waiting for its follow-up (a warm turn);
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

Spares follow demand: per profile, as many as the peak of concurrent new conversations
seen in the last ``spare_demand_window_seconds`` (at least one for the ``spare_profiles``
most recent profiles), within free room.

A process that exited (or whose pipes closed) is never leased: its watcher reports the exit
at once, and ``alive`` is checked again at the moment of granting. A process that dies by
itself before its first turn (before it printed anything, soon after launch) puts its
account into exponential backoff (1 s doubling to ``backoff_max_seconds``; every profile of
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
import dataclasses
import itertools
import logging
import secrets
import signal
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from .cli.launch import SPARE_LAUNCH
from .cli.profile import Profile
from .core.messages import Message, history_fingerprint
from .errors import BridgeError, CliCrashed, CliUnavailable, PoolBusy

log = logging.getLogger(__name__)

State = Literal["starting", "spare", "held", "busy", "stopping"]
Obtained = Literal["held", "spare", "cold"]  # how a lease found its process


class PooledProcess(Protocol):
    """What the pool needs of a process (``cli.process.CliProcess`` in production)."""

    profile: Profile
    history: tuple[Message, ...]

    @property
    def pid(self) -> int | None: ...

    @property
    def alive(self) -> bool: ...

    @property
    def reusable(self) -> bool:
        """Alive and its last turn completed cleanly: it may serve the next turn."""
        ...

    @property
    def started(self) -> bool:
        """The CLI printed something of its protocol: it launched fine, whatever came after."""
        ...

    def rss(self) -> int: ...

    def failure(self) -> str:
        """What the process said when it failed (its stderr tail), for error messages."""
        ...

    # Optional (read with getattr): ``exit_code`` (None while running; negative: the signal
    # that ended it) and ``turns`` (turns answered).

    async def wait(self) -> None:
        """Return when the process has exited."""
        ...

    async def stop(self) -> None:
        """Stop it (interrupting a turn still running) and remove what it leaves behind."""
        ...


P = TypeVar("P", bound=PooledProcess)

#: How long spare launches wait for a new process's first turn to produce its first output
#: (bench/bench_tap.py: a launch beside a warmed spare's first turn made its time to first
#: token 1.5x a follow-up's on an idle machine).
SPARES_WAIT_FOR_FIRST_OUTPUT_SECONDS = 1.0
Launch = Callable[[Profile, tuple[Message, ...]], Awaitable[P]]


@dataclass
class PoolLimits:
    """The pool's bounds. Defaults are Settings' (tests/test_settings.py keeps them equal), so
    a pool made without settings behaves as a server started without configuration."""

    max_processes: int = 8
    max_memory_bytes: int = 4096 * 1024 * 1024
    spare_profiles: int = 2
    max_spares_per_profile: int = 4
    spare_demand_window_seconds: float = 600
    max_conversations: int = 6
    conversation_idle_seconds: float = 900
    spare_idle_seconds: float = 1800
    queue_size: int = 32
    queue_timeout_seconds: float = 30
    reap_interval_seconds: float = 5
    early_death_seconds: float = 10  # a process dying this soon after launch failed to launch
    backoff_max_seconds: float = 60


@dataclass
class Lease(Generic[P]):
    """A process handed to one request; ``how`` is 'held', 'spare' or 'cold'; ``waited``
    is how long the request waited for it (queueing plus any launch), in seconds; ``queued``
    whether it had to wait in the queue for room first; ``key`` the conversation id under
    which the process is held after the turn (within its tenant: the pool's own key): the
    request's own, else the one the held process had (a follow-up matched by history), else
    a new one; ``conversation_id`` the same as the client sees it (X-Conversation-Id)."""

    process: P
    how: Obtained
    waited: float
    queued: bool = False
    key: str | None = None
    conversation_id: str | None = None
    _spoke: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def first_output(self) -> None:
        """Tell the pool the turn's first output arrived (spares it held back may launch now);
        later calls do nothing."""
        spoke, self._spoke = self._spoke, None
        if spoke is not None:
            spoke()


_ids = itertools.count(1)


@dataclass(eq=False)
class _Entry:
    profile: Profile
    history: tuple[Message, ...]
    state: State = "starting"
    process: PooledProcess | None = None
    fingerprint: str = ""
    key: str | None = None
    launched_at: float = 0.0
    launch_began: float = 0.0  # when its launch was asked for (before launched_at)
    idle_since: float = 0.0
    id: int = field(default_factory=lambda: next(_ids))
    for_request: _Request | None = None
    served: bool = False  # completed a turn: a later death is not a failure to launch
    tenant: str = ""  # whose conversation it holds (a client key's name): never another's
    failure_noted: bool = False  # its early death already counted towards the backoff
    # A new process's first turn runs until its first output (or this time): spare launches
    # wait for it (_fill_spares).
    first_output_due: float = 0.0


@dataclass(eq=False)
class _Request:
    profile: Profile
    history: tuple[Message, ...]
    fingerprint: str
    key: str | None
    future: asyncio.Future[Lease]
    submitted: float
    launching: bool = False  # a process is being launched for it
    queued: bool = False  # it waited in the queue for room (for the request log)
    tenant: str = ""
    fresh: bool = False  # a newly launched process only (a retry after a process died)


@dataclass
class _Backoff:
    failures: int = 0
    until: float = 0.0
    last_error: str = ""
    noted_at: float = 0.0  # when the last failure was seen


# Messages to the owner task.
@dataclass
class _Submit:
    request: _Request


@dataclass
class _Withdraw:
    request: _Request


@dataclass
class _Return:
    process: PooledProcess
    key: str | None
    hold: bool = True


@dataclass
class _Launched:
    entry: _Entry
    process: PooledProcess | None
    error: BaseException | None


@dataclass
class _Died:
    """The process exited by itself (seen by its watcher)."""

    entry: _Entry


@dataclass
class _Stopped:
    """A retired process has exited and its leftovers are removed."""

    entry: _Entry


@dataclass
class _Spoke:
    """A leased process's turn produced its first output."""

    process: object


@dataclass
class _Tick:
    memory_bytes: int | None = None


@dataclass
class _Close:
    """Stop taking work. ``force``: stop busy processes too. ``done`` resolves when nothing is
    busy or starting (not forced) or when every process has exited (forced)."""

    done: asyncio.Future[None]
    force: bool


class Pool(Generic[P]):
    def __init__(self, launch: Launch[P], limits: PoolLimits, clock: Callable[[], float] = time.monotonic):
        self._launch = launch
        self.limits = limits
        self._clock = clock
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._entries: dict[int, _Entry] = {}
        self._by_process: dict[int, _Entry] = {}  # id(process) -> entry
        self._held: OrderedDict[tuple[Profile, str], _Entry] = OrderedDict()  # least recently used first
        self._keys: dict[str, _Entry] = {}
        self._waiting: deque[_Request] = deque()
        self._recent: OrderedDict[Profile, float] = OrderedDict()  # profiles by last use
        self._new_in_flight: dict[Profile, int] = {}
        self._demand: deque[tuple[float, Profile, int]] = deque()
        # Keyed by account: a CLI that exits at once (a broken binary, an unreadable
        # configuration) fails every profile of that login alike, so one pause covers them all.
        # A profile that carries the caller's own CLI options (a schema, tools) pauses alone:
        # one caller's bad options must not stop everybody's turns (_backoff_key).
        self._backoff: dict[str | Profile, _Backoff] = {}
        self._memory_bytes = 0
        self._tasks: set[asyncio.Task] = set()  # launches and stops
        self._watchers: set[asyncio.Task] = set()  # one per live process, until it exits
        self._owner: asyncio.Task | None = None
        self._reaper: asyncio.Task | None = None
        self._closing = False
        self._close_waiters: list[_Close] = []
        # Workers (tap.inject): a process given back after a turn is a spare again, so a busy
        # one counts towards its profile's spares (else each turn would launch a replacement
        # and each tick retire the surplus).
        self.workers = False
        self.counters = {"held": 0, "spare": 0, "cold": 0, "busy_refusals": 0, "evictions": 0, "launched": 0,
                         "launch_failures": 0}  # fmt: skip

    # -- public ----------------------------------------------------------------------
    def start(self, warm_profiles: tuple[Profile, ...] | list[Profile] = ()) -> None:
        """Start the owner and the reaper; keep spares for ``warm_profiles``."""
        now = self._clock()
        for profile in warm_profiles:
            self._recent[profile] = now
        self._owner = asyncio.create_task(self._run(), name="pool-owner")
        self._reaper = asyncio.create_task(self._reap_forever(), name="pool-reaper")
        self._post(_Tick())

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
            key = _scoped(tenant, key)
        request = _Request(
            profile, history, _fingerprint(tenant, history), key, loop.create_future(), self._clock(), tenant=tenant
        )
        request.fresh = fresh
        self._post(_Submit(request))
        try:
            async with asyncio.timeout(self.limits.queue_timeout_seconds):
                lease = await asyncio.shield(request.future)
        except TimeoutError:
            self._post(_Withdraw(request))
            raise PoolBusy(
                f"All Claude CLI processes stayed busy for {self.limits.queue_timeout_seconds:.0f} s; retry shortly.",
                retry_after=5,
            ) from None
        except asyncio.CancelledError:
            self._post(_Withdraw(request))  # a grant that raced the cancellation comes back
            raise
        try:
            yield lease
        finally:
            self._post(_Return(lease.process, lease.key, hold))

    def holder(self, profile: Profile, history: tuple[Message, ...], tenant: str = "") -> str | None:
        """The account whose held process holds exactly ``history`` for ``tenant`` with this
        profile on some account (None: no process holds it). A read of the owner's state for
        the engine's choice of account; the lease itself decides."""
        fingerprint = _fingerprint(tenant, history)
        for held_profile, held_fingerprint in self._held:
            if held_fingerprint == fingerprint and held_profile == dataclasses.replace(
                profile, account=held_profile.account
            ):
                return held_profile.account
        return None

    def status(self) -> dict:
        """Counts by state, memory, spares and their targets, the queue, backoff and counters."""
        states = dict.fromkeys(("starting", "spare", "held", "busy", "stopping"), 0)
        for entry in self._entries.values():
            states[entry.state] += 1
        live = [e for e in self._entries.values() if e.process is not None and e.state != "stopping"]
        return {
            "processes": len(live),  # launched and not stopping; "starting" and "stopping" apart
            **states,
            "spares": states["spare"],
            "waiting": len(self._waiting),
            "memory_mb": round(self._memory_bytes / 1024 / 1024, 1),
            "spare_targets": {
                p.model + (" (custom)" if _custom(p) else ""): n for p, n in self._spare_targets().items()
            },
            "pids": sorted(e.process.pid for e in live if e.process is not None and e.process.pid),
            "models": sorted({e.profile.model for e in self._entries.values() if e.state != "stopping"}),
            "backoff": {
                account: {
                    "failures": b.failures,
                    "seconds_left": round(max(0.0, b.until - self._clock()), 1),
                    "last_error": b.last_error,
                }
                for account, b in self._backoff.items()
                if b.failures and isinstance(account, str)
            },
            "counters": dict(self.counters),
            "degraded": self.degraded(),
            # One row per process (the dashboard): state, model, turns, seconds since launch.
            "process_list": [
                {
                    "pid": e.process.pid if e.process is not None else None,
                    "state": e.state,
                    "model": e.profile.model + (" (custom)" if _custom(e.profile) else ""),
                    "turns": getattr(e.process, "turns", 0),  # turns answered (cli.process)
                    "age_s": round(self._clock() - e.launched_at, 1) if e.launched_at else None,
                }
                for e in live
            ],
        }

    def degraded(self) -> list[str]:
        """Why the pool cannot launch processes right now (empty when it can): one line per
        account in backoff, with the CLI's own words."""
        reasons = []
        for account, backoff in self._backoff.items():
            if backoff.failures and isinstance(account, str):
                left = max(0.0, backoff.until - self._clock())
                reasons.append(
                    f"new CLI processes of account {account} exit before their first turn "
                    f"({backoff.failures} in a row; next attempt in {left:.0f} s): {backoff.last_error or 'no output'}"
                )
        return reasons

    async def close(self, grace: float) -> None:
        """Refuse new work, let busy turns finish for ``grace`` seconds, then stop everything."""
        if self._owner is None or self._owner.done():
            return
        self._closing = True  # lease() refuses at once; the owner refuses what was queued
        loop = asyncio.get_running_loop()
        drained: asyncio.Future[None] = loop.create_future()
        self._post(_Close(drained, force=False))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.shield(drained)
        gone: asyncio.Future[None] = loop.create_future()
        self._post(_Close(gone, force=True))
        await gone
        for task in (self._owner, self._reaper):
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in (self._owner, self._reaper) if t is not None], return_exceptions=True)
        for task in [*self._tasks, *self._watchers]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._watchers, return_exceptions=True)

    async def settled(self) -> None:
        """Return once every message, launch and stop in flight has been handled."""
        while True:
            await asyncio.sleep(0)
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
                continue
            if self._inbox.empty():
                await asyncio.sleep(0)
                if self._inbox.empty() and not self._tasks:
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
            if isinstance(message, _Submit):
                self._on_submit(message.request)
            elif isinstance(message, _Withdraw):
                self._on_withdraw(message.request)
            elif isinstance(message, _Return):
                self._on_return(message.process, message.key, message.hold)
            elif isinstance(message, _Launched):
                self._on_launched(message)
            elif isinstance(message, _Died):
                self._on_died(message.entry)
            elif isinstance(message, _Stopped):
                self._forget(message.entry)
            elif isinstance(message, _Tick):
                self._on_tick(message)
            elif isinstance(message, _Spoke):
                entry = self._by_process.get(id(message.process))
                if entry is not None:
                    entry.first_output_due = 0.0
            elif isinstance(message, _Close):
                self._on_close(message)
        except Exception:
            log.exception("pool message %s failed", type(message).__name__)

    def _on_submit(self, request: _Request) -> None:
        if self._closing:
            self._refuse(request, PoolBusy("The server is shutting down.", retry_after=5))
            return
        self._recent[request.profile] = self._clock()
        self._recent.move_to_end(request.profile)
        while len(self._recent) > max(self.limits.spare_profiles, 1) * 4:
            self._recent.popitem(last=False)
        if request.key is not None:
            self._drop_diverged(request.key, request.profile, request.fingerprint)
        if self._serve_idle(request):
            return
        queued = sum(1 for r in self._waiting if not r.launching)
        if not queued and self._has_room() and self._backoff_error(request.profile) is None:
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

    def _on_withdraw(self, request: _Request) -> None:
        if request in self._waiting:
            self._waiting.remove(request)
        future = request.future
        if future.done() and not future.cancelled() and future.exception() is None:
            # Granted just as the caller gave up: nothing ran, so the process is as it was.
            self._on_return(future.result().process, None)
        elif not future.done():
            future.cancel()

    def _on_return(self, process: PooledProcess, key: str | None, hold: bool = True) -> None:
        entry = self._by_process.get(id(process))
        if entry is None or entry.state != "busy":
            return
        if new_conversation(entry.history):
            self._new_in_flight[entry.profile] = max(0, self._new_in_flight.get(entry.profile, 0) - 1)
        if self._closing or not process.reusable:
            if not process.alive:
                self._note_early_death(entry)  # before the retry's request is handled (FIFO)
            self._retire(entry)
            return
        self._end_backoff(entry)  # launched since the last failure, and it served: the CLI works
        entry.served = True
        entry.history = process.history
        if new_conversation(entry.history):  # given back unused: still a spare
            entry.state, entry.idle_since = "spare", self._clock()
        elif hold:
            self._make_held(entry, key)
        else:
            self._retire(entry)

    def _on_launched(self, message: _Launched) -> None:
        entry, request = message.entry, message.entry.for_request
        entry.for_request = None
        if message.process is None:
            self.counters["launch_failures"] += 1
            del self._entries[entry.id]
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
        process = message.process
        self.counters["launched"] += 1
        entry.process = process
        entry.launched_at = self._clock()
        self._by_process[id(process)] = entry
        watcher = asyncio.ensure_future(self._watch(entry, process))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        if self._closing:
            entry.state = "spare"
            self._retire(entry)
        elif request is not None and not request.future.done() and request in self._waiting:
            self._waiting.remove(request)
            self._grant(request, entry, "cold")
        elif new_conversation(entry.history):
            entry.state, entry.idle_since = "spare", self._clock()
        else:  # launched for a request that left: keep it for the same history
            self._make_held(entry, None)

    def _on_died(self, entry: _Entry) -> None:
        """A process exited by itself. An idle one is retired (which removes its leftovers);
        a busy one's turn fails by itself and comes back unusable. Dying soon after launch,
        before the CLI said anything, is a failure to launch."""
        if entry.state == "stopping":
            return
        self._note_early_death(entry)
        if entry.state in ("spare", "held"):
            self._retire(entry)

    def _note_early_death(self, entry: _Entry) -> None:
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
        if code in _KILLED:
            return
        if getattr(process, "callers_fault", False):
            return  # the request's own options (an invalid schema): a 400 for it, no failure of the CLI
        entry.failure_noted = True
        self._note_failure(entry.profile, process.failure(), entry.launch_began)

    def _on_close(self, close: _Close) -> None:
        self._closing = True
        for request in list(self._waiting):
            self._waiting.remove(request)
            self._refuse(request, PoolBusy("The server is shutting down.", retry_after=5))
        for entry in list(self._entries.values()):
            if entry.state in ("spare", "held") or (close.force and entry.state == "busy"):
                self._retire(entry)
        self._close_waiters.append(close)

    def _check_closed(self) -> None:
        if not self._close_waiters:
            return
        busy = any(e.state in ("busy", "starting") for e in self._entries.values())
        for close in list(self._close_waiters):
            if (close.force and not self._entries) or (not close.force and not busy):
                self._close_waiters.remove(close)
                if not close.done.done():
                    close.done.set_result(None)

    def _on_tick(self, tick: _Tick) -> None:
        if tick.memory_bytes is not None:
            self._memory_bytes = tick.memory_bytes
        now = self._clock()
        targets = self._spare_targets()
        for entry in list(self._entries.values()):
            if entry.state == "spare":
                idle = self._count("spare", entry.profile) + self._returning(entry.profile)
                # A worker is any conversation's next turn: one per profile stays until idle.
                surplus = idle > max(targets.get(entry.profile, 0), 1 if self.workers else 0)
                if now - entry.idle_since > self.limits.spare_idle_seconds or surplus:
                    self._retire(entry)
            elif entry.state == "held" and now - entry.idle_since > self.limits.conversation_idle_seconds:
                self._retire(entry)
        while self._memory_bytes > self.limits.max_memory_bytes and self._evict_one():
            self._memory_bytes -= self._memory_bytes // max(1, self._live_count())

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
            failure = self._backoff_error(request.profile)
            if failure is not None:
                self._waiting.remove(request)
                self._refuse(request, failure)
                continue
            if self._has_room():
                request.launching = True
                self._start_launch(request.profile, request.history, request)
                continue
            if self._count("stopping") < len([r for r in self._waiting if not r.launching]):
                self._evict_one()
            break
        if not any(not r.launching for r in self._waiting):
            self._fill_spares()

    def _serve_idle(self, request: _Request) -> bool:
        """Grant a held process with exactly this history, or a spare for a new conversation."""
        if request.future.done() or request.fresh:
            return False
        held = self._held.pop((request.profile, request.fingerprint), None)
        if held is not None:
            if held.process is not None and held.process.alive:
                self._grant(request, held, "held")
                return True
            self._retire(held)
        if new_conversation(request.history):
            spares = [e for e in self._entries.values() if e.state == "spare" and e.profile == request.profile]
            for spare in sorted(spares, key=lambda e: e.idle_since):
                if spare.process is not None and spare.process.alive:
                    self._grant(request, spare, "spare")
                    return True
                self._retire(spare)
        return False

    def _grant(self, request: _Request, entry: _Entry, how: Obtained) -> None:
        # The id the conversation keeps (returned as X-Conversation-Id): sending it back, or
        # the same history, finds this process again.
        key = request.key or entry.key or _scoped(request.tenant, new_conversation_id())
        if entry.key is not None:
            self._keys.pop(entry.key, None)
            entry.key = None
        entry.state, entry.tenant = "busy", request.tenant
        if new_conversation(request.history):
            count = self._new_in_flight.get(request.profile, 0) + 1
            self._new_in_flight[request.profile] = count
            self._demand.append((self._clock(), request.profile, count))
        self.counters[how] += 1
        assert entry.process is not None and not request.future.done()
        public = key[len(request.tenant) + 1 :] if request.tenant else key
        lease = Lease(entry.process, how, self._clock() - request.submitted, request.queued, key, public)
        if how != "held":
            # The first turn of a process that never answered (a spare's, a cold start's) is
            # the one a launch beside it slows most: spares wait until it speaks (bounded).
            entry.first_output_due = self._clock() + SPARES_WAIT_FOR_FIRST_OUTPUT_SECONDS
            process = entry.process
            lease._spoke = lambda: self._post(_Spoke(process))
            asyncio.get_running_loop().call_later(SPARES_WAIT_FOR_FIRST_OUTPUT_SECONDS, self._post, _Tick())
        request.future.set_result(lease)

    def _make_held(self, entry: _Entry, key: str | None) -> None:
        entry.state, entry.idle_since = "held", self._clock()
        entry.fingerprint = _fingerprint(entry.tenant, entry.history)
        slot = (entry.profile, entry.fingerprint)
        previous = self._held.pop(slot, None)
        if previous is not None and previous is not entry:
            self._retire(previous)
        self._held[slot] = entry
        if key is not None:
            stale = self._keys.get(key)
            if stale is not None and stale is not entry:
                self._retire(stale)  # the same conversation, moved on: the old one can never match
            self._keys[key] = entry
            entry.key = key
        while len(self._held) > self.limits.max_conversations:
            _, oldest = next(iter(self._held.items()))
            self.counters["evictions"] += 1
            self._retire(oldest)

    def _drop_diverged(self, key: str, profile: Profile, fingerprint: str) -> None:
        """A conversation id whose held process holds another history has diverged (edited,
        regenerated, trimmed): that process can never match again."""
        entry = self._keys.get(key)
        if entry is not None and (entry.profile, entry.fingerprint) != (profile, fingerprint):
            self._retire(entry)

    def _has_room(self) -> bool:
        """Whether one more process fits. Processes still stopping count: they are alive
        until they exit, and MAX_PROCESSES bounds live processes."""
        if len(self._entries) >= self.limits.max_processes:
            return False
        per_process = self._memory_bytes / max(1, self._live_count())
        return self._memory_bytes + per_process * self._count("starting") < self.limits.max_memory_bytes

    def _evict_one(self) -> bool:
        """Retire one idle process to make room: spares beyond their profile's target, then
        any spare, then the least recently used conversation. False if none is idle."""
        targets = self._spare_targets()
        spares = [e for e in self._entries.values() if e.state == "spare"]
        spares.sort(key=lambda e: (self._count("spare", e.profile) <= targets.get(e.profile, 0), e.idle_since))
        if spares:
            self.counters["evictions"] += 1
            self._retire(spares[0])
            return True
        for entry in self._held.values():
            self.counters["evictions"] += 1
            self._retire(entry)
            return True
        return False

    # -- spares --------------------------------------------------------------------------
    def _spare_targets(self) -> dict[Profile, int]:
        """Spares wanted per profile: the recent peak of concurrent new conversations, at
        least one for the most recently used profiles."""
        horizon = self._clock() - self.limits.spare_demand_window_seconds
        while self._demand and self._demand[0][0] < horizon:
            self._demand.popleft()
        recent = list(reversed(self._recent))[: self.limits.spare_profiles]
        targets = dict.fromkeys(recent, 1)
        for _, profile, count in self._demand:
            if profile in targets or count > 1:
                targets[profile] = max(targets.get(profile, 0), min(count, self.limits.max_spares_per_profile))
        return targets

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
        if any(e.state == "busy" and e.first_output_due > now for e in self._entries.values()):
            return  # a new process's first turn has not spoken yet (see _grant)
        turns_running = any(entry.state == "busy" for entry in self._entries.values())
        recent = list(reversed(self._recent))
        for profile, wanted in sorted(self._spare_targets().items(), key=lambda item: -self._recent.get(item[0], 0)):
            if self._backoff_error(profile) is not None:
                continue
            target = min(wanted, 1) if turns_running else wanted
            if any(key in self._backoff for key in _backoff_keys(profile)):
                target = min(target, 1)  # after failures: one attempt at a time, no spawn loop
            while (
                self._count("spare", profile) + self._count_launching_spares(profile) + self._returning(profile)
                < target
            ):
                if not self._has_room():
                    first_of_latest = recent and profile == recent[-1] and self._count("spare", profile) == 0
                    if first_of_latest and not self._count_launching_spares(profile) and not self._count("stopping"):
                        for entry in list(self._held.values())[:1]:
                            self.counters["evictions"] += 1
                            self._retire(entry)
                    return
                self._start_launch(profile, (), None)

    def _returning(self, profile: Profile) -> int:
        """Busy workers of the profile: each comes back as a spare after its turn."""
        if not self.workers:
            return 0
        return sum(1 for e in self._entries.values() if e.state == "busy" and e.profile == profile
                   and new_conversation(e.history))  # fmt: skip

    def _count_launching_spares(self, profile: Profile) -> int:
        return sum(1 for e in self._entries.values() if e.state == "starting" and e.profile == profile
                   and e.for_request is None)  # fmt: skip

    # -- launching, retiring, watching -----------------------------------------------------
    def _start_launch(self, profile: Profile, history: tuple[Message, ...], request: _Request | None) -> None:
        entry = _Entry(profile, history, for_request=request, launch_began=self._clock())
        self._entries[entry.id] = entry

        async def launch() -> None:
            SPARE_LAUNCH.set(request is None)  # this task's own context: the launcher may warm it
            try:
                process = await self._launch(profile, history)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                self._post(_Launched(entry, None, exc))
            else:
                self._post(_Launched(entry, process, None))

        self._spawn_task(launch())

    def _retire(self, entry: _Entry) -> None:
        """Take a process out of every index now and stop it in the background (a turn still
        running is interrupted by ``stop``); it counts against the limits until it has exited.
        A process still starting is retired when its launch reports back."""
        if entry.state in ("stopping", "starting"):
            return
        entry.state = "stopping"
        self._unindex(entry)
        process = entry.process
        if process is None:
            self._forget(entry)
            return

        async def stop() -> None:
            try:
                await process.stop()
            except Exception:
                log.exception("stopping CLI process %s failed", process.pid)
            finally:
                self._post(_Stopped(entry))

        self._spawn_task(stop())

    async def _watch(self, entry: _Entry, process: PooledProcess) -> None:
        with contextlib.suppress(Exception):
            await process.wait()
        self._post(_Died(entry))

    def _unindex(self, entry: _Entry) -> None:
        if self._held.get((entry.profile, entry.fingerprint)) is entry:
            del self._held[(entry.profile, entry.fingerprint)]
        if entry.key is not None and self._keys.get(entry.key) is entry:
            del self._keys[entry.key]
        entry.key = None

    def _forget(self, entry: _Entry) -> None:
        self._unindex(entry)
        self._entries.pop(entry.id, None)
        if entry.process is not None:
            self._by_process.pop(id(entry.process), None)

    def _spawn_task(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- failures ------------------------------------------------------------------------
    def _note_failure(self, profile: Profile, detail: str, launch_began: float) -> None:
        """Count a failed launch. Launches that began before the last failure was seen are
        the same attempt (a burst of spares started together): they do not lengthen the pause."""
        backoff = self._backoff.setdefault(_backoff_key(profile), _Backoff())
        backoff.last_error = detail.strip()[-500:]
        if backoff.failures and launch_began < backoff.noted_at:
            return
        backoff.failures += 1
        backoff.noted_at = self._clock()
        delay = min(self.limits.backoff_max_seconds, 2.0 ** (backoff.failures - 1))
        backoff.until = self._clock() + delay
        log.error(
            "the Claude CLI failed to start (%d in a row); next attempt in %.0f s: %s",
            backoff.failures, delay, backoff.last_error or "no output",
        )  # fmt: skip
        asyncio.get_running_loop().call_later(delay, self._post, _Tick())

    def _backoff_error(self, profile: Profile) -> BridgeError | None:
        """The refusal while the profile's account, or the profile itself (the caller's own
        options), is in backoff; None when a launch may be tried."""
        for key in _backoff_keys(profile):
            backoff = self._backoff.get(key)
            if backoff is None or not backoff.failures:
                continue
            left = backoff.until - self._clock()
            if left <= 0 and not self._count_launching(key):
                continue  # time for the next attempt
            return CliUnavailable(
                f"The Claude CLI fails to start ({backoff.failures} attempts in a row): "
                f"{backoff.last_error or 'it exited at once'}",
                retry_after=max(1, round(left)),
            )
        return None

    def _end_backoff(self, entry: _Entry) -> None:
        """A process launched since the last failure works: its account's backoff (the binary
        and the login work) and its profile's end."""
        for key in _backoff_keys(entry.profile):
            backoff = self._backoff.get(key)
            if backoff is not None and entry.launch_began >= backoff.noted_at:
                del self._backoff[key]

    def _end_recovered_backoffs(self) -> None:
        """A process of a backed-off profile that printed its protocol launched fine: the CLI
        works again (a fixed binary), so serving resumes without waiting for a turn."""
        if not self._backoff:
            return
        for entry in self._entries.values():
            process = entry.process
            if process is not None and process.started and process.alive:
                self._end_backoff(entry)  # (only what failed before its launch began)

    def _count_launching(self, key: str | Profile) -> int:
        """Launches in flight for a backoff's unit: an account, or one profile."""
        return sum(
            1 for e in self._entries.values()
            if e.state == "starting" and (e.profile.account == key if isinstance(key, str) else e.profile == key)
        )  # fmt: skip

    def _refuse(self, request: _Request, error: BaseException) -> None:
        if not request.future.done():
            request.future.set_exception(error)
            request.future.exception()  # retrieved: a caller that left must not log it

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.limits.reap_interval_seconds)
            processes = [e.process for e in self._entries.values() if e.process is not None]
            self._post(_Tick(await asyncio.to_thread(_total_rss, processes)))

    # -- counting --------------------------------------------------------------------------
    def _count(self, state: State, profile: Profile | None = None) -> int:
        return sum(1 for e in self._entries.values() if e.state == state and (profile is None or e.profile == profile))

    def _live_count(self) -> int:
        return sum(1 for e in self._entries.values() if e.process is not None)


# Exit codes of a process killed from outside (asyncio: minus the signal number).
_KILLED = {-signal.SIGKILL, -signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP}


def _total_rss(processes: list[PooledProcess]) -> int:
    """Resident memory of all the processes (blocking /proc reads: run in a thread)."""
    return sum(process.rss() for process in processes)


def _scoped(tenant: str, key: str) -> str:
    """A conversation id within its tenant (the pool's own key): two tenants' equal ids differ."""
    return f"{tenant}\x00{key}" if tenant else key


def _fingerprint(tenant: str, history: tuple[Message, ...]) -> str:
    """The history's fingerprint within its tenant: equal histories of two tenants differ."""
    fingerprint = history_fingerprint(history)
    return f"{tenant}\x00{fingerprint}" if tenant else fingerprint


def new_conversation_id() -> str:
    """An id for a conversation whose client named none (random: it names nothing)."""
    return "conv-" + secrets.token_hex(12)


def new_conversation(history: tuple[Message, ...]) -> bool:
    return not history


def _backoff_key(profile: Profile) -> str | Profile:
    """What a failed launch of this profile pauses: the profile alone when it carries options
    the CLI validates from the caller's input (a schema, tools, a forced tool), else its
    account."""
    own = profile.json_schema is not None or profile.tools_json is not None or profile.tool_choice_json is not None
    return profile if own else profile.account


def _backoff_keys(profile: Profile) -> set[str | Profile]:
    """The backoffs that stop a launch of this profile: its account's, and its own if it has one."""
    return {profile.account, _backoff_key(profile)}


def _custom(profile: Profile) -> bool:
    return profile != Profile(model=profile.model)
