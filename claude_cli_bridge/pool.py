"""The pool of CLI processes: warm spares, held conversations, admission, health.

Every live process is in exactly one state:

- *spare*: started for a profile, holding no history, ready to answer a new conversation;
- *held*: idle, holding a conversation's history, waiting for its follow-up (a warm turn);
- *busy*: running a turn for a request.

``acquire`` finds a held process whose history is exactly the request's, else a spare (for a
new conversation), else starts one (resumed from a transcript of the history). When the pool
is full, idle processes are evicted (spares of old profiles first, then the least recently
used conversation); when every process is busy, the request waits in a bounded queue and is
refused with ``PoolBusy`` when the queue is full or the wait too long. Eviction only ever
costs a rebuild: a process is used only for the exact history it holds.

The spawn function is injected so pool mechanics can be tested without the real CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol

from .cli.profile import Profile
from .core.messages import Message, history_fingerprint
from .errors import PoolBusy

log = logging.getLogger(__name__)


class PooledProcess(Protocol):
    """What the pool needs of a process (``cli.process.CliProcess`` in production)."""

    id: int
    profile: Profile
    history: tuple[Message, ...]
    busy: bool
    spoiled: bool
    last_used: float
    pid: int | None

    @property
    def alive(self) -> bool: ...

    def rss(self) -> int: ...

    async def interrupt(self, wait: float = 2.0) -> None: ...

    async def stop(self) -> None: ...


Spawn = Callable[[Profile, tuple[Message, ...]], Awaitable[PooledProcess]]
Slot = tuple[Profile, str]


@dataclass
class PoolLimits:
    max_processes: int = 6
    max_memory_bytes: int = 4096 * 1024 * 1024
    spare_profiles: int = 2
    max_conversations: int = 8
    conversation_idle_seconds: float = 900
    spare_idle_seconds: float = 1800
    queue_size: int = 32
    queue_timeout_seconds: float = 30
    reap_interval_seconds: float = 5


@dataclass
class Lease:
    """A process handed to one request; ``how`` is 'held', 'spare' or 'cold'."""

    process: PooledProcess
    how: str


class Pool:
    def __init__(self, spawn: Spawn, limits: PoolLimits):
        self._spawn = spawn
        self.limits = limits
        self._procs: set[PooledProcess] = set()
        self._stopping: set[PooledProcess] = set()  # retired, not yet exited
        self._starting = 0
        self._spares: dict[Profile, list[PooledProcess]] = {}
        self._held: OrderedDict[Slot, PooledProcess] = OrderedDict()
        self._keys: dict[str, Slot] = {}
        self._recent: OrderedDict[Profile, float] = OrderedDict()
        self._changed = asyncio.Condition()
        self._queue: deque[object] = deque()  # tickets of requests waiting for room, oldest first
        self._closed = False
        self._background: set[asyncio.Task] = set()
        self._filling = False
        self._fill_again = False
        self._reaper: asyncio.Task | None = None
        self.counters = {"held": 0, "spare": 0, "cold": 0, "busy_refusals": 0, "evictions": 0, "spawned": 0}

    # -- public ----------------------------------------------------------------------
    def start(self, warm_profiles: list[Profile] = ()) -> None:
        """Start the reaper, and spares for ``warm_profiles``."""
        for profile in warm_profiles:
            self._note_profile(profile)
        self._reaper = asyncio.create_task(self._reap_forever())
        self._fill_spares_soon()

    async def acquire(self, profile: Profile, history: tuple[Message, ...], key: str | None = None) -> Lease:
        if self._closed:
            raise PoolBusy("The server is shutting down.", retry_after=5)
        self._note_profile(profile)
        slot: Slot = (profile, history_fingerprint(history))
        if key is not None:
            self._forget_stale_key(key, slot)
        held = self._held.pop(slot, None)
        if held is not None:
            if held.alive and not held.spoiled:
                held.busy = True
                self.counters["held"] += 1
                self._fill_spares_soon()
                return Lease(held, "held")
            self._retire(held)
        if not history:
            spare = self._take_spare(profile)
            if spare is not None:
                self.counters["spare"] += 1
                self._fill_spares_soon()
                return Lease(spare, "spare")
        await self._reserve()
        spawning = asyncio.ensure_future(self._spawn(profile, history))
        try:
            # Shielded: a client that leaves mid-start must not leave a half-started CLI
            # behind; the process is stopped once it exists.
            process = await asyncio.shield(spawning)
        except asyncio.CancelledError:
            spawning.add_done_callback(self._stop_orphan)
            raise
        finally:
            self._starting -= 1
            self._notify()
        self.counters["spawned"] += 1
        self.counters["cold"] += 1
        process.busy = True
        self._procs.add(process)
        self._fill_spares_soon()
        return Lease(process, "cold")

    def release(self, process: PooledProcess, key: str | None = None) -> None:
        """Hold a process after a completed turn, for the conversation's next request."""
        process.busy = False
        if self._closed or not process.alive or process.spoiled or process not in self._procs:
            self._retire(process)
            return
        slot: Slot = (process.profile, history_fingerprint(process.history))
        previous = self._held.pop(slot, None)
        if previous is not None and previous is not process:
            self._retire(previous)
        self._held[slot] = process
        if key is not None:
            self._keys[key] = slot
        while len(self._held) > self.limits.max_conversations:
            _, oldest = self._held.popitem(last=False)
            self.counters["evictions"] += 1
            self._retire(oldest)
        self._notify()
        self._fill_spares_soon()

    def _stop_orphan(self, spawning: asyncio.Future) -> None:
        if not spawning.cancelled() and spawning.exception() is None:
            self._retire(spawning.result())

    def discard(self, process: PooledProcess, interrupt: bool = True) -> None:
        """Stop a process whose turn did not complete; never reuse it (its history is partial)."""
        process.spoiled = True
        self._retire(process, interrupt=interrupt)

    def status(self) -> dict:
        return {
            "processes": len(self._procs),
            "stopping": len(self._stopping),
            "starting": self._starting,
            "busy": sum(1 for p in self._procs if p.busy),
            "held": len(self._held),
            "spares": sum(len(s) for s in self._spares.values()),
            "waiting": len(self._queue),
            "pids": sorted(p.pid for p in self._procs if p.pid),
            "models": sorted({p.profile.model for p in self._procs}),
            "counters": dict(self.counters),
        }

    async def close(self, grace: float) -> None:
        """Stop taking requests, let busy turns finish for ``grace`` seconds, then stop all."""
        self._closed = True
        self._notify()
        if self._reaper:
            self._reaper.cancel()
        end = time.monotonic() + grace
        while any(p.busy for p in self._procs) and time.monotonic() < end:
            await asyncio.sleep(0.05)
        for process in list(self._procs):
            self._retire(process, interrupt=process.busy)
        await self.drain_background()

    async def drain_background(self) -> None:
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # -- admission -------------------------------------------------------------------
    def _has_room(self) -> bool:
        """Whether one more process fits. Processes still being stopped count: they are
        alive until they exit, and MAX_PROCESSES bounds live processes."""
        if len(self._procs) + len(self._stopping) + self._starting >= self.limits.max_processes:
            return False
        return sum(p.rss() for p in [*self._procs, *self._stopping]) < self.limits.max_memory_bytes

    async def _reserve(self) -> None:
        """Wait until a new process may be started; count it as starting. Raises PoolBusy.

        First come, first served: only the request at the head of the queue may take room,
        and a newcomer queues behind requests already waiting.
        """
        if not self._queue and self._take_room():
            return
        if len(self._queue) >= self.limits.queue_size and not self._stopping:
            self.counters["busy_refusals"] += 1
            raise PoolBusy("All Claude CLI processes are busy and the queue is full; retry shortly.", retry_after=2)
        ticket = object()
        self._queue.append(ticket)
        deadline = time.monotonic() + self.limits.queue_timeout_seconds
        try:
            async with self._changed:
                while not (self._queue[0] is ticket and self._take_room()):
                    if self._closed:
                        raise PoolBusy("The server is shutting down.", retry_after=5)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self.counters["busy_refusals"] += 1
                        raise PoolBusy(
                            "All Claude CLI processes stayed busy for "
                            f"{self.limits.queue_timeout_seconds:.0f} s; retry shortly.",
                            retry_after=5,
                        )
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                    # cancellation (a client that left) arriving as the wait completes.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(remaining):
                            await self._changed.wait()
        finally:
            self._queue.remove(ticket)
            self._notify()  # the next in line may go now

    def _take_room(self) -> bool:
        """Count a new process as starting if it fits now. If not, stop an idle process
        so that room comes, unless processes already stopping will cover the waiters."""
        if self._has_room():
            self._starting += 1
            return True
        if len(self._stopping) < max(len(self._queue), 1):
            self._evict_one_idle()
        return False

    def _evict_one_idle(self) -> bool:
        """Stop one idle process to make room: an old profile's spare, then any spare, then
        the least recently used held conversation."""
        recent = set(self._wanted_profiles())
        spares = [p for profile, ps in self._spares.items() for p in ps]
        spares.sort(key=lambda p: (p.profile in recent, p.last_used))
        if spares:
            self._retire(spares[0])
            return True
        return self._evict_oldest_held()

    # -- spares ----------------------------------------------------------------------
    def _note_profile(self, profile: Profile) -> None:
        self._recent[profile] = time.monotonic()
        self._recent.move_to_end(profile)
        while len(self._recent) > max(self.limits.spare_profiles, 1) * 4:
            self._recent.popitem(last=False)

    def _wanted_profiles(self) -> list[Profile]:
        return list(reversed(self._recent))[: self.limits.spare_profiles]

    def _take_spare(self, profile: Profile) -> PooledProcess | None:
        spares = self._spares.get(profile, [])
        while spares:
            spare = spares.pop(0)
            if spare.alive and not spare.spoiled:
                spare.busy = True
                return spare
            self._retire(spare)
        return None

    def _fill_spares_soon(self) -> None:
        if self._closed:
            return
        if self._filling:
            self._fill_again = True  # the running fill may have passed the profile already
            return
        self._filling = True
        self._run_background(self._fill_spares())

    async def _fill_spares(self) -> None:
        """Start one spare for each recently seen profile that has none. The most recent
        profile's spare may evict the least recently used idle conversation (a new
        conversation is likelier than the return of the oldest one); other spares use free
        room only. Spares never take room a waiting request needs."""
        try:
            for rank, profile in enumerate(self._wanted_profiles()):
                if self._closed or self._spares.get(profile) or self._queue:
                    continue
                if not self._has_room():
                    if rank == 0 and not self._stopping:
                        self._evict_oldest_held()  # its exit triggers another fill
                    continue
                self._starting += 1
                try:
                    spare = await self._spawn(profile, ())
                except Exception as exc:  # a failed spare costs only a cold start later
                    log.warning("could not start a spare CLI process: %s", exc)
                    continue
                finally:
                    self._starting -= 1
                self.counters["spawned"] += 1
                if self._closed:
                    await spare.stop()
                    return
                self._procs.add(spare)
                self._spares.setdefault(profile, []).append(spare)
                self._notify()
        finally:
            self._filling = False
            if self._fill_again:
                self._fill_again = False
                self._fill_spares_soon()

    def _evict_oldest_held(self) -> bool:
        """Stop the least recently used idle conversation; False if there is none."""
        for slot, process in self._held.items():
            if not process.busy:
                del self._held[slot]
                self.counters["evictions"] += 1
                self._retire(process)
                return True
        return False

    # -- retiring and reaping ----------------------------------------------------------
    def _forget_stale_key(self, key: str, slot: Slot) -> None:
        """A conversation id whose held process no longer matches its history has diverged
        (edited, regenerated, trimmed): that process can never match again."""
        previous = self._keys.get(key)
        if previous is not None and previous != slot:
            stale = self._held.pop(previous, None)
            del self._keys[key]
            if stale is not None:
                self._retire(stale)

    def _retire(self, process: PooledProcess, interrupt: bool = False) -> None:
        """Take a process out of every index now and stop it in the background; it counts
        against the limits until it has exited."""
        if process in self._stopping:
            return
        self._stopping.add(process)
        self._procs.discard(process)
        for spares in self._spares.values():
            if process in spares:
                spares.remove(process)
        for slot, held in list(self._held.items()):
            if held is process:
                del self._held[slot]
        self._run_background(self._stop(process, interrupt))
        self._notify()

    async def _stop(self, process: PooledProcess, interrupt: bool) -> None:
        try:
            if interrupt:
                with contextlib.suppress(Exception):
                    await process.interrupt(wait=1.0)
            await process.stop()
        finally:
            self._stopping.discard(process)
            self._notify()
            self._fill_spares_soon()

    def _run_background(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._changed:
                self._changed.notify_all()

        if self._queue:
            self._run_background(wake())

    async def _reap_forever(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.limits.reap_interval_seconds)
            with contextlib.suppress(Exception):
                self.reap()

    def reap(self) -> None:
        """Stop dead processes, idle conversations and spares past their idle time, and idle
        processes while memory is over its bound."""
        now = time.monotonic()
        for process in list(self._procs):
            if process.busy:
                continue
            is_spare = any(process in spares for spares in self._spares.values())
            idle_limit = self.limits.spare_idle_seconds if is_spare else self.limits.conversation_idle_seconds
            if not process.alive or process.spoiled or now - process.last_used > idle_limit:
                self._retire(process)
        while sum(p.rss() for p in self._procs) > self.limits.max_memory_bytes:
            if not self._evict_one_idle():
                break
        self._fill_spares_soon()
