"""The pool's records and messages: what a process must offer, the pool's bounds, a lease, the
owner's entries and the messages its inbox takes (no behaviour beyond small helpers)."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from ..cli.profile import Profile
from ..core.messages import Message, history_fingerprint

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
#: ``launch(profile, history, spare)``: a new process; ``spare`` when no request waits for it
#: (the launcher may warm it up first).
Launch = Callable[[Profile, tuple[Message, ...], bool], Awaitable[P]]


@dataclass
class PoolLimits:
    """The pool's bounds. Defaults are Settings' (tests/test_settings_unit.py keeps them equal), so
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


_entry_ids = itertools.count(1)


@dataclass(eq=False)
class Entry:
    profile: Profile
    history: tuple[Message, ...]
    state: State = "starting"
    process: PooledProcess | None = None
    fingerprint: str = ""
    key: str | None = None
    launched_at: float = 0.0
    launch_began: float = 0.0  # when its launch was asked for (before launched_at)
    idle_since: float = 0.0
    id: int = field(default_factory=lambda: next(_entry_ids))
    for_request: Request | None = None
    served: bool = False  # completed a turn: a later death is not a failure to launch
    tenant: str = ""  # whose conversation it holds (a client key's name): never another's
    failure_noted: bool = False  # its early death already counted towards the backoff
    # A new process's first turn runs until its first output (or this time): spare launches
    # wait for it (_fill_spares).
    first_output_due: float = 0.0
    # The account's login generation it was launched with (Pool.retire_account): an older
    # one is stopped as soon as it is idle.
    generation: int = 0


@dataclass(eq=False)
class Request:
    profile: Profile
    history: tuple[Message, ...]
    fingerprint: str
    key: str | None
    future: asyncio.Future[Lease[Any]]
    submitted: float
    launching: bool = False  # a process is being launched for it
    queued: bool = False  # it waited in the queue for room (for the request log)
    tenant: str = ""
    fresh: bool = False  # a newly launched process only (a retry after a process died)


# Messages to the owner task.
@dataclass
class Submit:
    request: Request


@dataclass
class Withdraw:
    request: Request


@dataclass
class Return:
    process: PooledProcess
    key: str | None
    hold: bool = True


@dataclass
class Launched:
    entry: Entry
    process: PooledProcess | None
    error: BaseException | None


@dataclass
class Died:
    """The process exited by itself (seen by its watcher)."""

    entry: Entry


@dataclass
class Stopped:
    """A retired process has exited and its leftovers are removed."""

    entry: Entry


@dataclass
class Spoke:
    """A leased process's turn produced its first output."""

    process: object


@dataclass
class Tick:
    memory_bytes: int | None = None


@dataclass
class RetireAccount:
    account: str


@dataclass
class Close:
    """Stop taking work. ``force``: stop busy processes too. ``done`` resolves when nothing is
    busy or starting (not forced) or when every process has exited (forced)."""

    done: asyncio.Future[None]
    force: bool


# Exit codes of a process killed from outside (asyncio: minus the signal number).
KILLED = {-signal.SIGKILL, -signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP}


def total_rss(processes: list[PooledProcess]) -> int:
    """Resident memory of all the processes (blocking /proc reads: run in a thread)."""
    return sum(process.rss() for process in processes)


def scoped(tenant: str, key: str) -> str:
    """A conversation id within its tenant (the pool's own key): two tenants' equal ids differ."""
    return f"{tenant}\x00{key}" if tenant else key


def fingerprint_of(tenant: str, history: tuple[Message, ...]) -> str:
    """The history's fingerprint within its tenant: equal histories of two tenants differ."""
    fingerprint = history_fingerprint(history)
    return f"{tenant}\x00{fingerprint}" if tenant else fingerprint


def new_conversation_id() -> str:
    """An id for a conversation whose client named none (random: it names nothing)."""
    return "conv-" + secrets.token_hex(12)


def new_conversation(history: tuple[Message, ...]) -> bool:
    return not history


def custom(profile: Profile) -> bool:
    """Whether a profile carries options beyond its model and account (for the pool's labels:
    with an accounts file every process has an account, which is no custom option)."""
    return profile != Profile(model=profile.model, account=profile.account)
