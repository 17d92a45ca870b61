"""Pool mechanics with a stand-in process (the only place a fake CLI is used)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random

import pytest

from claude_cli_bridge.cli.profile import Profile
from claude_cli_bridge.core.messages import Message, TextBlock
from claude_cli_bridge.errors import CliCrashed, CliUnavailable, PoolBusy
from claude_cli_bridge.pool import Lease, Pool, PoolLimits
from claude_cli_bridge.pool.records import Tick

pytestmark = pytest.mark.unit

_pids = itertools.count(1000)


class StandIn:
    """What the pool sees of a CLI process: history, liveness and the reuse verdict."""

    def __init__(self, profile, history):
        self.pid = next(_pids)
        self.profile = profile
        self.history = history
        self.spoiled = False
        self.stopped = False
        self.died = False
        self.started = False
        self.stop_delay = 0.0
        self._exited = asyncio.Event()

    @property
    def alive(self):
        return not (self.stopped or self.died)

    @property
    def reusable(self):
        return self.alive and not self.spoiled

    def rss(self):
        return 100

    def failure(self):
        return "stand-in died"

    async def wait(self):
        await self._exited.wait()

    async def stop(self):
        await asyncio.sleep(self.stop_delay)
        self.stopped = True
        self._exited.set()

    def die(self):
        self.died = True
        self._exited.set()

    def answer(self, prompt: str, reply: str):
        self.started = True
        self.history = (*self.history, user(prompt), Message("assistant", (TextBlock(reply),)))


def user(text):
    return Message("user", (TextBlock(text),))


P = Profile(model="sonnet", system="be nice")
TASK = Profile(model="haiku")


class Harness:
    def __init__(self, **limits):
        self.spawned: list[StandIn] = []
        self.launch_delay = 0.0
        self.launch_error: Exception | None = None
        self.stop_delay = 0.0
        self.pool = Pool(self.launch, PoolLimits(**{"queue_timeout_seconds": 0.3, "spare_profiles": 0, **limits}))

    async def launch(self, profile, history, spare=False):
        await asyncio.sleep(self.launch_delay)
        if self.launch_error is not None:
            raise self.launch_error
        process = StandIn(profile, history)
        process.stop_delay = self.stop_delay
        self.spawned.append(process)
        return process

    async def take(self, profile=P, history=(), key=None) -> tuple[Lease, contextlib.AbstractAsyncContextManager]:
        """A lease kept open until ``give`` (the ``async with`` body, spread over a test)."""
        manager = self.pool.lease(profile, history, key)
        return await manager.__aenter__(), manager

    async def give(self, manager) -> None:
        await manager.__aexit__(None, None, None)
        await self.pool.settled()

    async def converse(self, prompt="q", reply="a", profile=P, history=(), key=None) -> Lease:
        """One whole turn: lease, answer, give back."""
        async with self.pool.lease(profile, history, key) as lease:
            lease.process.answer(prompt, reply)
        await self.pool.settled()
        return lease

    def live(self) -> list[StandIn]:
        return [p for p in self.spawned if p.alive]


@pytest.fixture
async def harness():
    made: list[Harness] = []

    def make(warm=(), **limits) -> Harness:
        h = Harness(**limits)
        h.pool.start(list(warm))
        made.append(h)
        return h

    yield make
    for h in made:
        await h.pool.close(grace=0.1)


async def test_a_new_conversation_takes_a_spare_and_a_replacement_starts(harness):
    h = harness(warm=[P], spare_profiles=1)
    await h.pool.settled()
    assert h.pool.snapshot().spare == 1
    lease, held = await h.take()
    assert lease.how == "spare" and lease.process is h.spawned[0]
    await h.pool.settled()
    assert h.pool.snapshot().spare == 0 and len(h.spawned) == 1  # not beside its first turn...
    lease.first_output()
    await h.pool.settled()
    assert h.pool.snapshot().spare == 1 and len(h.spawned) == 2  # ...once it has spoken
    await h.give(held)


async def test_spares_wait_for_a_first_turn_that_never_speaks_a_second_at_most(harness):
    h = harness(warm=[P], spare_profiles=1)
    await h.pool.settled()
    _, held = await h.take()
    await asyncio.sleep(0.5)
    await h.pool.settled()
    assert len(h.spawned) == 1
    for _ in range(100):  # launched once the second has passed
        await asyncio.sleep(0.05)
        if len(h.spawned) == 2:
            break
    assert len(h.spawned) == 2
    await h.give(held)


async def test_a_follow_up_reuses_the_held_process(harness):
    h = harness()
    first = await h.converse("q1", "a1")
    history = (user("q1"), Message("assistant", (TextBlock("a1 "),)))  # the client trims differently
    async with h.pool.lease(P, history) as again:
        assert again.how == "held" and again.process is first.process


async def test_an_unusable_process_is_never_held(harness):
    h = harness()
    async with h.pool.lease(P, ()) as lease:
        lease.process.answer("q", "a")
        lease.process.spoiled = True  # e.g. cut at a stop sequence: its verdict, not the pool's
    await h.pool.settled()
    assert lease.process.stopped and h.pool.snapshot().held == 0


async def test_a_diverged_history_starts_a_new_process_and_never_reuses_the_old(harness):
    h = harness()
    first = await h.converse("q1", "a1", key="conv")
    edited = (user("q1 edited"), Message("assistant", (TextBlock("a1"),)))
    async with h.pool.lease(P, edited, key="conv") as rebuilt:
        assert rebuilt.how == "cold" and rebuilt.process is not first.process
        assert rebuilt.process.history == edited
    await h.pool.settled()
    assert first.process.stopped  # the stale conversation was dropped


async def test_two_interleaved_conversations_without_keys_both_stay_warm(harness):
    h = harness(max_conversations=4)
    a = await h.converse("a1", "x")
    b = await h.converse("b1", "y")
    for n in range(3):
        a = await h.converse(f"a{n + 2}", "x", history=a.process.history)
        b = await h.converse(f"b{n + 2}", "y", history=b.process.history)
    assert h.pool.counters["cold"] == 2 and h.pool.counters["held"] == 6


async def test_a_changed_system_prompt_is_a_different_profile(harness):
    h = harness()
    first = await h.converse()
    async with h.pool.lease(Profile(model="sonnet", system="be rude"), first.process.history) as again:
        assert again.how == "cold"


async def test_held_conversations_are_bounded_least_recently_used_first(harness):
    h = harness(max_conversations=2)
    leases = [await h.converse(f"q{n}") for n in range(3)]
    assert [lease.process.stopped for lease in leases] == [True, False, False]
    assert h.pool.snapshot().held == 2


async def test_a_full_pool_evicts_idle_processes_before_refusing(harness):
    h = harness(max_processes=1)
    first = await h.converse()
    async with h.pool.lease(P, ()) as second:
        assert second.how == "cold"
    assert first.process.stopped


async def test_when_all_are_busy_requests_queue_then_are_refused(harness):
    h = harness(max_processes=1, queue_size=1)
    _, busy = await h.take()
    waiter = asyncio.create_task(h.take())
    await asyncio.sleep(0.01)
    with pytest.raises(PoolBusy, match="queue is full"):
        await h.take()
    with pytest.raises(PoolBusy, match="stayed busy"):  # the waiter times out
        await waiter
    await h.give(busy)
    lease, held = await h.take()
    assert lease.how == "spare"  # given back unused: a spare again
    await h.give(held)


async def test_a_full_queue_answers_busy_at_once_while_processes_are_stopping(harness):
    h = harness(max_processes=1, queue_size=1, queue_timeout_seconds=5)
    h.stop_delay = 1.0
    lease, busy = await h.take()
    lease.process.spoiled = True
    await busy.__aexit__(None, None, None)  # now stopping, for a second
    waiter = asyncio.create_task(h.take())  # fills the queue
    await asyncio.sleep(0.01)
    started = asyncio.get_running_loop().time()
    for _ in range(5):
        with pytest.raises(PoolBusy, match="queue is full"):
            await h.take()
    assert asyncio.get_running_loop().time() - started < 0.5  # a hang guard, not a benchmark
    (_, held) = await waiter
    await h.give(held)


async def test_a_waiter_gets_the_room_a_finished_turn_frees(harness):
    h = harness(max_processes=1, queue_timeout_seconds=5)
    lease, busy = await h.take()
    waiter = asyncio.create_task(h.take())
    await asyncio.sleep(0.05)
    lease.process.answer("q", "a")
    await h.give(busy)  # held and idle: evicted for the waiter
    second, held = await asyncio.wait_for(waiter, 2)
    assert second.how == "cold"
    assert second.queued and second.waited >= 0.05  # for the request log: it waited for room
    assert not lease.queued
    await h.give(held)


async def test_close_stops_everything_and_refuses_new_work(harness):
    h = harness(warm=[P], spare_profiles=1)
    await h.pool.settled()
    _, _busy = await h.take()
    await h.pool.close(grace=0.1)
    assert all(process.stopped for process in h.spawned)
    with pytest.raises(PoolBusy):
        await h.take()


async def test_idle_conversations_and_spares_are_reaped(harness):
    h = harness(conversation_idle_seconds=0, spare_idle_seconds=0, reap_interval_seconds=0.01)
    lease = await h.converse()
    await asyncio.sleep(0.05)
    await h.pool.settled()
    assert lease.process.stopped and h.pool.snapshot().held == 0


async def test_a_process_that_dies_while_idle_is_cleaned_up(harness):
    h = harness()
    lease = await h.converse()
    lease.process.die()
    await asyncio.sleep(0.01)
    await h.pool.settled()
    assert h.pool.snapshot().held == 0 and lease.process.stopped  # stop() ran: leftovers removed


async def test_spares_are_refilled_after_conversations_fill_the_pool(harness):
    h = harness(warm=[P], max_processes=3, max_conversations=3, spare_profiles=1)
    await h.pool.settled()
    for n in range(4):  # each new conversation takes the spare; the next spare must follow
        lease = await h.converse(f"q{n}")
        assert lease.how == "spare", f"conversation {n} started cold"
    status = h.pool.snapshot()
    assert status.spare == 1 and status.processes <= 3


async def test_a_burst_of_new_conversations_raises_the_spare_target(harness):
    h = harness(warm=[TASK], spare_profiles=1, max_processes=8)
    h.launch_delay = 0.01
    await h.pool.settled()
    burst = await asyncio.gather(*(h.take(TASK) for _ in range(3)))  # Open WebUI: title, tags, follow-ups
    assert sorted(lease.how for lease, _ in burst) == ["cold", "cold", "spare"]
    for _, manager in burst:
        await h.give(manager)
    await h.pool.settled()
    assert h.pool.snapshot().spare_targets["haiku"] == 3
    second = await asyncio.gather(*(h.take(TASK) for _ in range(3)))
    assert [lease.how for lease, _ in second] == ["spare"] * 3
    for _, manager in second:
        await h.give(manager)


async def test_processes_being_stopped_still_count_against_max_processes(harness):
    h = harness(max_processes=1, queue_timeout_seconds=5)
    h.stop_delay = 0.2
    lease, busy = await h.take()
    lease.process.spoiled = True
    await busy.__aexit__(None, None, None)  # stopping takes 0.2 s
    second = asyncio.create_task(h.take())
    await asyncio.sleep(0.1)
    assert not second.done(), "a new process started while the old one was still alive"
    new, held = await asyncio.wait_for(second, 2)
    assert lease.process.stopped and new.process is not lease.process
    await h.give(held)


async def test_a_cancelled_waiter_does_not_take_a_process(harness):
    h = harness(max_processes=1, queue_timeout_seconds=5)
    lease, busy = await h.take()
    waiter = asyncio.create_task(h.take())
    await asyncio.sleep(0.01)
    lease.process.answer("q", "a")
    await busy.__aexit__(None, None, None)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await h.pool.settled()
    status = h.pool.snapshot()
    assert status.busy == 0 and status.starting == 0 and len(h.live()) <= 1


async def test_newcomers_queue_behind_waiting_requests(harness):
    h = harness(max_processes=1, queue_timeout_seconds=5)
    lease, busy = await h.take()
    order = []

    async def ask(name):
        async with h.pool.lease(P, ()) as got:
            order.append(name)
            await asyncio.sleep(0.01)
            got.process.spoiled = True

    first = asyncio.create_task(ask("first"))
    await asyncio.sleep(0.01)
    lease.process.spoiled = True
    await busy.__aexit__(None, None, None)
    second = asyncio.create_task(ask("second"))
    await asyncio.gather(first, second)
    assert order == ["first", "second"]


async def test_a_client_leaving_during_a_cold_start_leaves_no_busy_process(harness):
    h = harness()
    h.launch_delay = 0.1
    request = asyncio.create_task(h.take())
    await asyncio.sleep(0.02)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await asyncio.sleep(0.15)
    await h.pool.settled()
    status = h.pool.snapshot()
    assert status.starting == 0 and status.busy == 0
    assert len(h.live()) <= 1  # kept as a spare at most, never leaked busy


async def test_keys_never_outlive_their_slots(harness):
    h = harness(max_conversations=2)
    for n in range(50):
        await h.converse(f"q{n}", key=f"conversation-{n}")
    assert len(h.pool._keys) <= 2
    assert all(entry.state == "held" for entry in h.pool._keys.values())


async def test_a_cli_that_fails_to_launch_backs_off_and_requests_fail_fast(harness):
    h = harness(warm=[P], spare_profiles=1, queue_timeout_seconds=5)
    h.launch_error = CliCrashed("unknown option '--tools'")
    await asyncio.sleep(0.01)
    await h.pool.settled()
    status = h.pool.snapshot()
    assert status.backoff["default"].failures == 1
    assert "unknown option" in status.backoff["default"].last_error
    with pytest.raises(CliUnavailable, match="unknown option") as refused:
        await h.take()  # the CLI's own error at once (a wait for the queue would end in PoolBusy)
    assert refused.value.status == 503 and refused.value.retry_after is not None
    assert len(h.spawned) == 0 and h.pool.counters["launch_failures"] == 1  # no relaunch during backoff


async def test_a_failed_launch_backs_off_every_profile_of_its_account_and_no_other(harness):
    h = harness(queue_timeout_seconds=5)
    h.launch_error = CliCrashed("libbroken.so.1")
    with pytest.raises(CliCrashed):
        await h.take(P)
    with pytest.raises(CliUnavailable, match="libbroken"):
        await h.take(TASK)  # another model of the same login: the same binary fails
    h.launch_error = None
    other = dataclasses.replace(P, account="second")
    _, manager = await h.take(other)  # another account is not paused
    await h.give(manager)
    assert list(h.pool.snapshot().backoff) == ["default"]


async def test_a_failed_launch_of_a_callers_own_options_pauses_that_profile_only(harness):
    h = harness(queue_timeout_seconds=5)
    schema = dataclasses.replace(P, json_schema='{"type":"object","1e100":{}}')
    h.launch_error = CliCrashed("strict mode: unknown keyword")
    with pytest.raises(CliCrashed):
        await h.take(schema)
    h.launch_error = None
    with pytest.raises(CliUnavailable):
        await h.take(schema)  # that schema waits out its pause...
    _, manager = await h.take(P)  # ...everybody else's turns go on
    await h.give(manager)
    assert h.pool.snapshot().backoff == {} and h.pool.snapshot().degraded == []


async def test_a_cli_that_dies_right_after_launch_counts_as_a_failed_launch(harness):
    h = harness(warm=[P], spare_profiles=1)
    await h.pool.settled()
    h.spawned[0].die()
    await asyncio.sleep(0.01)
    await h.pool.settled()
    assert h.pool.snapshot().backoff["default"].failures == 1
    with pytest.raises(CliUnavailable, match="stand-in died"):
        await h.take()


async def test_randomized_stress_keeps_the_pool_invariants(harness):
    """Acquire, give back, spoil, cancel, crash and evict in random order; after every step
    the pool holds its limits, and once every lease ended nothing is busy."""
    rng = random.Random(1234)
    limits = {
        "max_processes": 4,
        "queue_size": 3,
        "max_conversations": 2,
        "queue_timeout_seconds": 0.2,
        "early_death_seconds": 0,
    }  # injected crashes are not failures to launch
    h = harness(warm=[P], spare_profiles=2, **limits)
    h.launch_delay = 0.001
    histories: list[tuple] = [()]
    outcomes = {"ok": 0, "busy": 0, "crashed": 0, "cancelled": 0}

    async def one_request(n: int) -> None:
        profile = rng.choice([P, TASK])
        history = rng.choice(histories)
        key = rng.choice([None, None, f"k{rng.randrange(4)}"])
        try:
            async with h.pool.lease(profile, history, key) as lease:
                await asyncio.sleep(rng.random() * 0.02)
                action = rng.random()
                if action < 0.15:
                    lease.process.die()
                elif action < 0.3:
                    lease.process.spoiled = True
                else:
                    lease.process.answer(f"q{n}", "a")
                    histories.append(lease.process.history)
            outcomes["ok"] += 1
        except PoolBusy:
            outcomes["busy"] += 1
        except CliCrashed:
            outcomes["crashed"] += 1

    def check() -> None:
        entries = list(h.pool._entries.values())
        assert len(entries) <= limits["max_processes"]
        assert len([p for p in h.spawned if p.alive]) <= limits["max_processes"]
        assert sum(1 for r in h.pool._waiting if not r.launching) <= limits["queue_size"]
        assert all(entry.state == "held" for entry in h.pool._keys.values())
        assert all(entry.state == "held" for entry in h.pool._held.values())

    tasks = []
    for n in range(300):
        task = asyncio.create_task(one_request(n))
        tasks.append(task)
        if rng.random() < 0.1:
            await asyncio.sleep(0.005)
            victim = rng.choice(tasks)
            if not victim.done():
                victim.cancel()
                outcomes["cancelled"] += 1
        if rng.random() < 0.05:
            idle = [p for p in h.spawned if p.alive]
            if idle:
                rng.choice(idle).die()  # a crash at any time, busy or not
        await asyncio.sleep(rng.random() * 0.004)
        check()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.05)
    await h.pool.settled()
    check()
    status = h.pool.snapshot()
    assert status.busy == 0 and status.starting == 0 and status.waiting == 0
    assert outcomes["ok"] > 50 and outcomes["busy"] > 0
    alive_pids = {p.pid for p in h.spawned if p.alive}
    assert alive_pids == set(status.pids)  # every live process is known, none leaked


async def test_a_one_off_turn_is_not_held(harness):
    h = harness()
    async with h.pool.lease(TASK, (), hold=False) as lease:
        lease.process.answer("### Task: title", "A title")
    await h.pool.settled()
    assert lease.process.stopped and h.pool.snapshot().held == 0


async def test_while_turns_run_only_a_profile_without_a_spare_gets_one(harness):
    h = harness(warm=[TASK], spare_profiles=1, max_processes=12)
    h.launch_delay = 0.01
    await h.pool.settled()
    first = await asyncio.gather(*(h.take(TASK) for _ in range(3)))
    for n, (lease, manager) in enumerate(first):
        lease.process.answer(f"first {n}", "done")
        await h.give(manager)  # the demand is now 3
    await h.pool.settled()
    assert h.pool.snapshot().spare == 3
    burst = await asyncio.gather(*(h.take(TASK) for _ in range(3)))  # all three spares taken
    for lease, _ in burst:
        lease.first_output()
    await h.pool.settled()
    assert h.pool.snapshot().spare == 1  # one replacement at once, not three, while turns run
    for n, (lease, manager) in enumerate(burst):
        lease.process.answer(f"task {n}", "done")
        await h.give(manager)
    await h.pool.settled()
    assert h.pool.snapshot().spare == 3  # the rest follow once no turn runs


async def test_a_spare_killed_from_outside_is_no_failed_launch_and_is_replaced(harness):
    h = harness(warm=[P], spare_profiles=1)
    await h.pool.settled()
    h.spawned[0].exit_code = -9  # SIGKILL (the OOM killer, pkill) before it said anything
    h.spawned[0].die()
    await asyncio.sleep(0.01)
    await h.pool.settled()
    assert not h.pool.snapshot().backoff and h.pool.snapshot().degraded == []
    lease, held = await h.take()
    assert lease.process is h.spawned[1] and lease.process.alive
    await h.give(held)


async def test_a_fresh_lease_never_takes_an_idle_process(harness):
    h = harness(warm=[P], spare_profiles=1)
    await h.pool.settled()
    spare = h.spawned[0]
    async with h.pool.lease(P, (), fresh=True) as lease:
        assert lease.how == "cold" and lease.process is not spare
    await h.pool.settled()


async def test_failing_launches_back_off_one_attempt_at_a_time_and_a_process_that_speaks_ends_it(harness):
    h = harness(warm=[P], spare_profiles=1, backoff_max_seconds=0.05)
    await h.pool.settled()
    for _ in range(6):  # every new process dies at once; a launch at a time, never a burst
        for process in h.live():
            process.die()
        await asyncio.sleep(0.06)
        await h.pool.settled()
        assert sum(1 for p in h.spawned if p.alive) <= 1
    status = h.pool.snapshot()
    assert status.backoff["default"].failures >= 2 and "stand-in died" in status.degraded[0]
    await asyncio.sleep(0.06)
    await h.pool.settled()
    fixed = h.live()[-1]
    fixed.started = True  # the CLI works again: its new process printed its protocol
    await h.converse()
    assert not h.pool.snapshot().backoff and h.pool.snapshot().degraded == []


async def test_a_conversation_without_a_key_gets_one_and_keeps_it_for_its_follow_ups(harness):
    h = harness()
    first = await h.converse("q1", "a1")
    assert first.key and first.key.startswith("conv-")
    history = first.process.history
    async with h.pool.lease(P, history) as second:  # no key sent: found by its history
        assert second.how == "held" and second.key == first.key
        second.process.answer("q2", "a2")
    await h.pool.settled()
    assert h.pool._keys[first.key].process is first.process
    other = await h.converse("q1", "a1")  # another conversation: another id
    assert other.key != first.key


async def test_the_returned_id_sent_back_continues_the_held_process(harness):
    h = harness()
    first = await h.converse("q1", "a1")
    async with h.pool.lease(P, first.process.history, first.key) as again:
        assert again.how == "held" and again.process is first.process and again.key == first.key


async def test_a_client_key_is_the_conversation_id(harness):
    h = harness()
    first = await h.converse("q1", "a1", key="mine")
    assert first.key == "mine"
    async with h.pool.lease(P, first.process.history) as again:
        assert again.key == "mine"


async def test_workers_serve_turn_after_turn_from_one_process_without_replacements(harness):
    """On workers a process comes back a spare after its turn (its history stays empty: the tap
    writes each turn's conversation), and a busy worker counts as that spare: sequential turns
    of any conversations use one process, with no replacement launched per turn."""
    h = harness(warm=[P], spare_profiles=1)
    h.pool.workers = True
    await h.pool.settled()
    assert len(h.spawned) == 1
    for n in range(5):
        lease, manager = await h.take(P, ())
        assert lease.how == "spare"
        lease.first_output()  # the turn spoke: spare launches may go ahead
        await asyncio.sleep(0.01)
        await h.pool.settled()
        assert len(h.spawned) == 1, f"turn {n}: a replacement was launched beside a busy worker"
        lease.process.started = True  # (answered: a worker's own history is never the bridge's)
        await h.give(manager)
    h.pool._post(Tick())
    await h.pool.settled()
    assert len(h.live()) == 1 and h.pool.snapshot().spare == 1  # kept, not retired as surplus


async def test_retiring_an_account_stops_its_idle_processes_now_and_busy_ones_after_their_turn(harness):
    """The accounts file changed (engine.apply_accounts): account b's processes go (idle ones
    at once, a busy one when its turn ends, not cut), account a's stay, no spare is refilled
    for b, and a turn asking for b later launches a process of the new login."""
    a, b = dataclasses.replace(P, account="a"), dataclasses.replace(P, account="b")
    h = harness(warm=[a, b], spare_profiles=2)
    h.pool.workers = True
    await h.pool.settled()
    assert sorted(p.profile.account for p in h.live()) == ["a", "b"]
    lease, manager = await h.take(b, ())
    lease.first_output()
    busy = lease.process
    await h.pool.settled()
    idle_b = [p for p in h.live() if p.profile.account == "b" and p is not busy]
    h.pool.retire_account("b")
    await h.pool.settled()
    assert busy.alive and not any(p.alive for p in idle_b)  # the running turn is not cut
    busy.started = True
    await h.give(manager)
    await h.pool.settled()
    assert not busy.alive and [p.profile.account for p in h.live()] == ["a"]
    h.pool._post(Tick())
    await h.pool.settled()
    assert [p.profile.account for p in h.live()] == ["a"]  # no spare refilled for b
    async with h.pool.lease(b, ()) as again:
        assert again.process.alive and again.process not in idle_b and again.process is not busy


def test_a_profile_is_custom_by_its_options_not_by_its_account():
    from claude_cli_bridge.pool.records import custom

    assert not custom(Profile(model="sonnet", account="a"))
    assert custom(Profile(model="sonnet", system="be nice", account="a"))
