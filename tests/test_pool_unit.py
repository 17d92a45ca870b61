"""Pool mechanics with a stand-in process (the only place a fake CLI is used)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from claude_cli_bridge.cli.profile import Profile
from claude_cli_bridge.core.messages import Message, TextBlock
from claude_cli_bridge.errors import PoolBusy
from claude_cli_bridge.pool import Pool, PoolLimits

_pids = itertools.count(1000)


class StandIn:
    def __init__(self, profile, history):
        self.id = self.pid = next(_pids)
        self.profile = profile
        self.history = history
        self.busy = False
        self.spoiled = False
        self.last_used = 0.0
        self.stopped = False
        self.interrupted = False

    @property
    def alive(self):
        return not self.stopped

    def rss(self):
        return 100

    async def interrupt(self, wait=2.0):
        self.interrupted = True

    async def stop(self):
        self.stopped = True

    def answer(self, prompt: str, reply: str):
        self.history = self.history + (user(prompt), Message("assistant", (TextBlock(reply),)))


def user(text):
    return Message("user", (TextBlock(text),))


def make_pool(**limits):
    spawned = []

    async def spawn(profile, history):
        await asyncio.sleep(0)
        process = StandIn(profile, history)
        spawned.append(process)
        return process

    pool = Pool(spawn, PoolLimits(**{"queue_timeout_seconds": 0.3, **limits}))
    return pool, spawned


P = Profile(model="sonnet", system="be nice")


def run(coro):
    return asyncio.run(coro)


def test_a_new_conversation_takes_a_spare_and_a_replacement_starts():
    async def scenario():
        pool, spawned = make_pool()
        pool.start([P])
        await pool.drain_background()
        assert pool.status()["spares"] == 1
        lease = await pool.acquire(P, ())
        assert lease.how == "spare" and lease.process is spawned[0]
        await pool.drain_background()
        assert pool.status()["spares"] == 1 and len(spawned) == 2

    run(scenario())


def test_a_follow_up_reuses_the_held_process():
    async def scenario():
        pool, spawned = make_pool(spare_profiles=0)
        lease = await pool.acquire(P, ())
        lease.process.answer("q1", "a1")
        pool.release(lease.process)
        history = (user("q1"), Message("assistant", (TextBlock("a1 "),)))  # client trims differently
        again = await pool.acquire(P, history)
        assert again.how == "held" and again.process is lease.process

    run(scenario())


def test_a_diverged_history_starts_a_new_process_and_never_reuses_the_old():
    async def scenario():
        pool, spawned = make_pool(spare_profiles=0)
        lease = await pool.acquire(P, (), key="conv")
        lease.process.answer("q1", "a1")
        pool.release(lease.process, key="conv")
        edited = (user("q1 edited"), Message("assistant", (TextBlock("a1"),)))
        rebuilt = await pool.acquire(P, edited, key="conv")
        assert rebuilt.how == "cold" and rebuilt.process is not lease.process
        assert rebuilt.process.history == edited
        await pool.drain_background()
        assert lease.process.stopped  # the stale conversation was dropped

    run(scenario())


def test_a_changed_system_prompt_is_a_different_profile():
    async def scenario():
        pool, _ = make_pool(spare_profiles=0)
        lease = await pool.acquire(P, ())
        lease.process.answer("q", "a")
        pool.release(lease.process)
        other = Profile(model="sonnet", system="be rude")
        again = await pool.acquire(other, lease.process.history)
        assert again.how == "cold"

    run(scenario())


def test_held_conversations_are_bounded_least_recently_used_first():
    async def scenario():
        pool, _ = make_pool(spare_profiles=0, max_conversations=2)
        leases = []
        for n in range(3):
            lease = await pool.acquire(P, ())
            lease.process.answer(f"q{n}", "a")
            pool.release(lease.process)
            leases.append(lease)
        await pool.drain_background()
        assert [lease.process.stopped for lease in leases] == [True, False, False]
        assert pool.status()["held"] == 2

    run(scenario())


def test_a_full_pool_evicts_idle_processes_before_refusing():
    async def scenario():
        pool, _ = make_pool(spare_profiles=0, max_processes=1)
        first = await pool.acquire(P, ())
        first.process.answer("q", "a")
        pool.release(first.process)
        second = await pool.acquire(P, ())
        assert second.how == "cold"
        await pool.drain_background()
        assert first.process.stopped

    run(scenario())


def test_when_all_are_busy_requests_queue_then_are_refused():
    async def scenario():
        pool, _ = make_pool(spare_profiles=0, max_processes=1, queue_size=1)
        busy = await pool.acquire(P, ())
        waiter = asyncio.create_task(pool.acquire(P, ()))
        await asyncio.sleep(0.01)
        with pytest.raises(PoolBusy):  # the queue (1) is full
            await pool.acquire(P, ())
        with pytest.raises(PoolBusy):  # the waiter times out
            await waiter
        pool.discard(busy.process)
        await pool.drain_background()
        assert (await pool.acquire(P, ())).how == "cold"

    run(scenario())


def test_a_waiter_gets_the_room_a_finished_turn_frees():
    async def scenario():
        pool, _ = make_pool(spare_profiles=0, max_processes=1, queue_timeout_seconds=5)
        busy = await pool.acquire(P, ())
        waiter = asyncio.create_task(pool.acquire(P, ()))
        await asyncio.sleep(0.05)
        busy.process.answer("q", "a")
        pool.release(busy.process)  # held and idle: evictable for the waiter
        lease = await asyncio.wait_for(waiter, 2)
        assert lease.how == "cold"

    run(scenario())


def test_discarded_processes_are_interrupted_and_stopped():
    async def scenario():
        pool, _ = make_pool(spare_profiles=0)
        lease = await pool.acquire(P, ())
        pool.discard(lease.process)
        await pool.drain_background()
        assert lease.process.interrupted and lease.process.stopped
        assert pool.status()["processes"] == 0

    run(scenario())


def test_close_stops_everything_and_refuses_new_work():
    async def scenario():
        pool, spawned = make_pool()
        pool.start([P])
        await pool.drain_background()
        await pool.acquire(P, ())
        await pool.close(grace=0.1)
        assert all(process.stopped for process in spawned)
        with pytest.raises(PoolBusy):
            await pool.acquire(P, ())

    run(scenario())


def test_reap_stops_idle_and_dead_processes():
    async def scenario():
        pool, _ = make_pool(spare_profiles=0, conversation_idle_seconds=0)
        lease = await pool.acquire(P, ())
        lease.process.answer("q", "a")
        pool.release(lease.process)
        pool.reap()
        await pool.drain_background()
        assert lease.process.stopped and pool.status()["held"] == 0

    run(scenario())


def test_spares_are_refilled_after_conversations_fill_the_pool():
    async def scenario():
        pool, spawned = make_pool(max_processes=3, max_conversations=3, spare_profiles=1)
        pool.start([P])
        await pool.drain_background()
        for n in range(4):  # each new conversation takes the spare; the next spare must follow
            lease = await pool.acquire(P, ())
            assert lease.how == "spare", f"conversation {n} started cold"
            lease.process.answer(f"q{n}", "a")
            pool.release(lease.process)
            await pool.drain_background()
        assert pool.status()["spares"] == 1 and pool.status()["processes"] <= 3

    run(scenario())


class SlowStop(StandIn):
    async def stop(self):
        await asyncio.sleep(0.2)
        self.stopped = True


def test_processes_being_stopped_still_count_against_max_processes():
    async def scenario():
        live = []

        async def spawn(profile, history):
            process = SlowStop(profile, history)
            live.append(process)
            return process

        pool = Pool(spawn, PoolLimits(max_processes=1, spare_profiles=0, queue_timeout_seconds=5))
        first = await pool.acquire(P, ())
        pool.discard(first.process)  # stopping takes 0.2 s
        second = asyncio.create_task(pool.acquire(P, ()))
        await asyncio.sleep(0.1)
        assert not second.done(), "a new process started while the old one was still alive"
        lease = await asyncio.wait_for(second, 2)
        assert first.process.stopped and lease.process is not first.process

    run(scenario())


def test_a_cancelled_waiter_does_not_take_a_process():
    async def scenario():
        pool, spawned = make_pool(spare_profiles=0, max_processes=1, queue_timeout_seconds=5)
        busy = await pool.acquire(P, ())
        waiter = asyncio.create_task(pool.acquire(P, ()))
        await asyncio.sleep(0.01)
        busy.process.answer("q", "a")
        pool.release(busy.process)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await pool.drain_background()
        assert pool.status()["starting"] == 0
        assert sum(1 for p in spawned if not p.stopped) <= 1

    run(scenario())


def test_newcomers_queue_behind_waiting_requests():
    async def scenario():
        pool, _ = make_pool(spare_profiles=0, max_processes=1, queue_timeout_seconds=5)
        busy = await pool.acquire(P, ())
        order = []

        async def ask(name):
            lease = await pool.acquire(P, ())
            order.append(name)
            await asyncio.sleep(0.01)
            pool.discard(lease.process)

        first = asyncio.create_task(ask("first"))
        await asyncio.sleep(0.01)
        pool.discard(busy.process)
        second = asyncio.create_task(ask("second"))
        await asyncio.gather(first, second)
        assert order == ["first", "second"]

    run(scenario())


def test_a_client_leaving_during_a_cold_start_leaves_no_process():
    async def scenario():
        started = []

        async def slow_spawn(profile, history):
            await asyncio.sleep(0.1)
            process = StandIn(profile, history)
            started.append(process)
            return process

        pool = Pool(slow_spawn, PoolLimits(spare_profiles=0))
        request = asyncio.create_task(pool.acquire(P, ()))
        await asyncio.sleep(0.02)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await asyncio.sleep(0.2)
        await pool.drain_background()
        assert started and all(process.stopped for process in started)
        assert pool.status()["starting"] == 0 and pool.status()["processes"] == 0

    run(scenario())
