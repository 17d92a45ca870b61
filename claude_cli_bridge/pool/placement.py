"""The pool's decisions, made by its owner task: which idle process serves a request, when
to launch, what to retire for room, how many spares each profile keeps, and what a death
soon after launch means (``owner`` has the contract)."""

from __future__ import annotations

import asyncio
import logging
from typing import Generic

from ..cli.profile import Profile
from ..core.messages import Message
from .records import (
    KILLED,
    SPARES_WAIT_FOR_FIRST_OUTPUT_SECONDS,
    Entry,
    Launched,
    Lease,
    Obtained,
    P,
    Request,
    Spoke,
    Tick,
    fingerprint_of,
    new_conversation,
    new_conversation_id,
    scoped,
)
from .state import PoolState

log = logging.getLogger("claude_cli_bridge.pool")


class Placement(Generic[P]):
    def __init__(self, state: PoolState[P]) -> None:
        self._s = state

    def schedule(self) -> None:
        """Grant what can be granted, launch or make room for the head of the queue, and
        keep spares at their targets with the room nobody waits for."""
        self.end_recovered_backoffs()
        for request in list(self._s.waiting):
            if request.future.done() or self.serve_idle(request):
                self._s.waiting.remove(request)
        needing_room = [r for r in self._s.waiting if not r.launching]
        for request in needing_room:  # first come, first served
            failure = self._s.backoff.refusal(request.profile)
            if failure is not None:
                self._s.waiting.remove(request)
                self.refuse(request, failure)
                continue
            if self.has_room():
                request.launching = True
                self.start_launch(request.profile, request.history, request)
                continue
            if self._s.table.count("stopping") < len([r for r in self._s.waiting if not r.launching]):
                self.evict_one()
            break
        if not any(not r.launching for r in self._s.waiting):
            self.fill_spares()

    def serve_idle(self, request: Request) -> bool:
        """Grant a held process with exactly this history, or a spare for a new conversation."""
        if request.future.done() or request.fresh:
            return False
        held = self._s.table.conversations.take(request.profile, request.fingerprint)
        if held is not None:
            if held.process is not None and held.process.alive:
                self.grant(request, held, "held")
                return True
            self.retire_dead(held)
        if new_conversation(request.history):
            spares = [e for e in self._s.table.entries.values() if e.state == "spare" and e.profile == request.profile]
            for spare in sorted(spares, key=lambda e: e.idle_since):
                if spare.process is not None and spare.process.alive:
                    self.grant(request, spare, "spare")
                    return True
                self.retire_dead(spare)
        return False

    def grant(self, request: Request, entry: Entry, how: Obtained) -> None:
        # The id the conversation keeps (returned as X-Conversation-Id): sending it back, or
        # the same history, finds this process again.
        key = request.key or entry.key or scoped(request.tenant, new_conversation_id())
        self._s.table.conversations.release_key(entry)
        entry.state, entry.tenant = "busy", request.tenant
        if new_conversation(request.history):
            self._s.spares.began(request.profile)
        self._s.counters[how] += 1
        assert entry.process is not None and not request.future.done()
        public = key[len(request.tenant) + 1 :] if request.tenant else key
        lease = Lease(entry.process, how, self._s.clock() - request.submitted, request.queued, key, public)
        if how != "held":
            # The first turn of a process that never answered (a spare's, a cold start's) is
            # the one a launch beside it slows most: spares wait until it speaks (bounded).
            entry.first_output_due = self._s.clock() + SPARES_WAIT_FOR_FIRST_OUTPUT_SECONDS
            process = entry.process
            lease._spoke = lambda: self._s.post(Spoke(process))
            asyncio.get_running_loop().call_later(SPARES_WAIT_FOR_FIRST_OUTPUT_SECONDS, self._s.post, Tick())
        request.future.set_result(lease)

    def make_held(self, entry: Entry, key: str | None) -> None:
        entry.state, entry.idle_since = "held", self._s.clock()
        entry.fingerprint = fingerprint_of(entry.tenant, entry.history)
        for replaced in self._s.table.conversations.hold(entry, key):
            self._s.table.retire(replaced)
        while len(self._s.table.conversations) > self._s.limits.max_conversations:
            oldest = self._s.table.conversations.oldest()
            assert oldest is not None
            self._s.counters["evictions"] += 1
            self._s.table.retire(oldest)

    def drop_diverged(self, key: str, profile: Profile, fingerprint: str) -> None:
        """A conversation id whose held process holds another history has diverged (edited,
        regenerated, trimmed): that process can never match again."""
        entry = self._s.table.conversations.diverged(key, profile, fingerprint)
        if entry is not None:
            self._s.table.retire(entry)

    def has_room(self) -> bool:
        """Whether one more process fits. Processes still stopping count: they are alive
        until they exit, and MAX_PROCESSES bounds live processes."""
        if len(self._s.table.entries) >= self._s.limits.max_processes:
            return False
        per_process = self._s.memory_bytes / max(1, self._s.table.live_count())
        return self._s.memory_bytes + per_process * self._s.table.count("starting") < self._s.limits.max_memory_bytes

    def evict_one(self) -> bool:
        """Retire one idle process to make room: spares beyond their profile's target, then
        any spare, then the least recently used conversation. False if none is idle."""
        targets = self.spare_targets()
        spares = [e for e in self._s.table.entries.values() if e.state == "spare"]
        spares.sort(key=lambda e: (self._s.table.count("spare", e.profile) <= targets.get(e.profile, 0), e.idle_since))
        if spares:
            self._s.counters["evictions"] += 1
            self._s.table.retire(spares[0])
            return True
        oldest = self._s.table.conversations.oldest()
        if oldest is not None:
            self._s.counters["evictions"] += 1
            self._s.table.retire(oldest)
            return True
        return False

    def spare_targets(self) -> dict[Profile, int]:
        return self._s.spares.targets()

    def fill_spares(self) -> None:
        """Launch spares up to their targets with free room; the most recent profile's first
        spare may retire the least recently used idle conversation (a new conversation is
        likelier than the return of the oldest one).

        While turns run, only a profile with no spare at all gets one: a launch costs about as
        much CPU as a first turn, and on few cores replacements launched during a burst slow
        the burst's own turns (bench/bench_pool.py: p95 2.6 s against 1.5 s for 8 new
        conversations). The rest follow as soon as no turn runs. And none launches while the
        first turn of a process that never answered (a spare taken, a cold start) has not
        produced its first output yet, for at most SPARES_WAIT_FOR_FIRST_OUTPUT_SECONDS."""
        if self._s.closing:
            return
        now = self._s.clock()
        if any(e.state == "busy" and e.first_output_due > now for e in self._s.table.entries.values()):
            return  # a new process's first turn has not spoken yet (see _grant)
        turns_running = any(entry.state == "busy" for entry in self._s.table.entries.values())
        recent = self._s.spares.latest()
        last_use = self._s.spares.recent
        for profile, wanted in sorted(self.spare_targets().items(), key=lambda item: -last_use.get(item[0], 0)):
            if self._s.backoff.refusal(profile) is not None:
                continue
            target = min(wanted, 1) if turns_running else wanted
            if self._s.backoff.touches(profile):
                target = min(target, 1)  # after failures: one attempt at a time, no spawn loop
            while (
                self._s.table.count("spare", profile)
                + self._s.table.launching_spares(profile)
                + self.returning(profile)
                < target
            ):
                if not self.has_room():
                    first_of_latest = recent and profile == recent[-1] and self._s.table.count("spare", profile) == 0
                    if (
                        first_of_latest
                        and not self._s.table.launching_spares(profile)
                        and not self._s.table.count("stopping")
                    ):
                        oldest = self._s.table.conversations.oldest()
                        if oldest is not None:
                            self._s.counters["evictions"] += 1
                            self._s.table.retire(oldest)
                    return
                self.start_launch(profile, (), None)

    def returning(self, profile: Profile) -> int:
        """Busy workers of the profile: each comes back as a spare after its turn."""
        return self._s.table.returning(profile) if self._s.workers else 0

    def start_launch(self, profile: Profile, history: tuple[Message, ...], request: Request | None) -> None:
        entry = Entry(profile, history, for_request=request, launch_began=self._s.clock(),
                      generation=self._s.generations.get(profile.account, 0))  # fmt: skip
        self._s.table.add(entry)

        async def launch() -> None:
            try:
                process = await self._s.launch(profile, history, request is None)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                self._s.post(Launched(entry, None, exc))
            else:
                self._s.post(Launched(entry, process, None))

        self._s.table.spawn(launch())

    def retire_dead(self, entry: Entry) -> None:
        """Retire an idle process found dead before its watcher reported it: a spare handed
        back dead by its launch (its warm-up's early exit) still counts as a failed launch,
        or a request arriving first would launch again at once instead of backing off."""
        self.note_early_death(entry)
        self._s.table.retire(entry)

    def note_early_death(self, entry: Entry) -> None:
        """A process that exited by itself before it ever spoke, soon after launch, failed to
        launch. One killed from outside did not: that is the OOM killer or a user, and the
        CLI would start fine again (no backoff, no refusals)."""
        process = entry.process
        if entry.failure_noted or process is None or entry.served or process.started:
            return
        if self._s.clock() - entry.launched_at >= self._s.limits.early_death_seconds:
            return
        code = getattr(process, "exit_code", None)
        if code is None and hasattr(process, "exit_code") and process.pid is not None:
            return  # not reaped yet: decided when its watcher reports the exit
        if code in KILLED:
            return
        if getattr(process, "callers_fault", False):
            return  # the request's own options (an invalid schema): a 400 for it, no failure of the CLI
        entry.failure_noted = True
        self.note_failure(entry.profile, process.failure(), entry.launch_began)

    def note_failure(self, profile: Profile, detail: str, launch_began: float) -> None:
        delay = self._s.backoff.failed(profile, detail, launch_began)
        if delay is not None:
            asyncio.get_running_loop().call_later(delay, self._s.post, Tick())

    def end_recovered_backoffs(self) -> None:
        """A process of a backed-off profile that printed its protocol launched fine: the CLI
        works again (a fixed binary), so serving resumes without waiting for a turn."""
        if not self._s.backoff:
            return
        for entry in self._s.table.entries.values():
            process = entry.process
            if process is not None and process.started and process.alive:
                self._s.backoff.worked(entry.profile, entry.launch_began)  # (only what failed before)

    def refuse(self, request: Request, error: BaseException) -> None:
        if not request.future.done():
            request.future.set_exception(error)
            request.future.exception()  # retrieved: a caller that left must not log it
