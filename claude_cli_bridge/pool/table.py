"""The pool's table of processes: every ``Entry`` by id and by process, the held
conversations' index, and the background tasks that launch, stop and watch them.

The owner (``owner.Pool``) alone calls this, from its one task: the table answers counts
and keeps the indexes consistent; the tasks it starts only report back as messages
(``post``), so every change of state stays the owner's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator

from ..cli.profile import Profile
from .backoff import BackoffKey
from .held import HeldConversations
from .records import Died, Entry, PooledProcess, State, Stopped, new_conversation

log = logging.getLogger("claude_cli_bridge.pool")


class ProcessTable:
    def __init__(self, post: Callable[[object], None]) -> None:
        self._post = post
        self.entries: dict[int, Entry] = {}
        self.by_process: dict[int, Entry] = {}  # id(process) -> entry
        self.conversations = HeldConversations()  # without workers only
        self.tasks: set[asyncio.Task[None]] = set()  # launches and stops
        self.watchers: set[asyncio.Task[None]] = set()  # one per live process, until it exits

    # -- reading ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self.entries.values()))

    def __len__(self) -> int:
        return len(self.entries)

    def entry_of(self, process: object) -> Entry | None:
        return self.by_process.get(id(process))

    def count(self, state: State, profile: Profile | None = None) -> int:
        return sum(1 for e in self.entries.values() if e.state == state and (profile is None or e.profile == profile))

    def live_count(self) -> int:
        return sum(1 for e in self.entries.values() if e.process is not None)

    def launching_spares(self, profile: Profile) -> int:
        """Launches in flight for ``profile`` that no request waits for."""
        return sum(1 for e in self.entries.values() if e.state == "starting" and e.profile == profile
                   and e.for_request is None)  # fmt: skip

    def launching(self, key: BackoffKey) -> int:
        """Launches in flight for a backoff's unit: an account, or one profile."""
        return sum(
            1 for e in self.entries.values()
            if e.state == "starting" and (e.profile.account == key if isinstance(key, str) else e.profile == key)
        )  # fmt: skip

    def returning(self, profile: Profile) -> int:
        """Busy workers of the profile: each comes back as a spare after its turn."""
        return sum(1 for e in self.entries.values() if e.state == "busy" and e.profile == profile
                   and new_conversation(e.history))  # fmt: skip

    # -- changes ---------------------------------------------------------------------------
    def add(self, entry: Entry) -> None:
        self.entries[entry.id] = entry

    def launched(self, entry: Entry, process: PooledProcess, at: float) -> None:
        """A launch came back with its process: index it and watch for its exit."""
        entry.process, entry.launched_at = process, at
        self.by_process[id(process)] = entry
        watcher = asyncio.ensure_future(self._watch(entry, process))
        self.watchers.add(watcher)
        watcher.add_done_callback(self.watchers.discard)

    def unindex(self, entry: Entry) -> None:
        self.conversations.remove(entry)

    def forget(self, entry: Entry) -> None:
        self.unindex(entry)
        self.entries.pop(entry.id, None)
        if entry.process is not None:
            self.by_process.pop(id(entry.process), None)

    def retire(self, entry: Entry) -> None:
        """Take a process out of every index now and stop it in the background (a turn still
        running is interrupted by ``stop``); it counts against the limits until it has exited.
        A process still starting is retired when its launch reports back."""
        if entry.state in ("stopping", "starting"):
            return
        entry.state = "stopping"
        self.unindex(entry)
        process = entry.process
        if process is None:
            self.forget(entry)
            return

        async def stop() -> None:
            try:
                await process.stop()
            except Exception:
                log.exception("stopping CLI process %s failed", process.pid)
            finally:
                self._post(Stopped(entry))

        self.spawn(stop())

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def cancel_all(self) -> None:
        for task in [*self.tasks, *self.watchers]:
            task.cancel()
        await asyncio.gather(*self.tasks, *self.watchers, return_exceptions=True)

    async def _watch(self, entry: Entry, process: PooledProcess) -> None:
        with contextlib.suppress(Exception):
            await process.wait()
        self._post(Died(entry))
