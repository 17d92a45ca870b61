"""What the bridge reports of itself, as typed snapshots between layers.

The pool (``PoolSnapshot``), the accounts (``AccountSnapshot`` with its ``WindowsSnapshot``),
the upstream tap (``TapSnapshot``), the probe (``FeatureSnapshot``) and the engine that gathers
them (``BridgeStatus``) produce these; ``/health``, ``/ready``, ``/metrics``, the dashboard and
the Ollama process list read them by attribute. ``as_json``
gives ``/health``'s JSON (its shape is pinned by tests/specs/health_shape.json);
``BridgeStatus.from_json`` reads such JSON back (test doubles state only the parts they care
about: a missing part reads as idle and fine).

Plain values only (numbers, strings, lists and dicts of them): a snapshot is a moment's copy,
never a view into the owner's state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProcessRow:
    """One CLI process, for the dashboard: its state, model, turns answered, seconds since launch."""

    pid: int | None
    state: str
    model: str
    turns: int
    age_s: float | None


@dataclass(frozen=True)
class LaunchPause:
    """An account whose new processes keep dying before their first turn: failures in a row,
    seconds to the next attempt, and the CLI's last words."""

    failures: int = 0
    seconds_left: float = 0.0
    last_error: str = ""


@dataclass(frozen=True)
class PoolSnapshot:
    """The pool by state (live processes; ``starting`` and ``stopping`` apart), the queue, the
    processes' memory, spare targets by model, pids and models, launch backoff per account
    (``failures``, ``seconds_left``, ``last_error``), counters, and why it is degraded."""

    processes: int = 0
    starting: int = 0
    spare: int = 0
    held: int = 0
    busy: int = 0
    stopping: int = 0
    waiting: int = 0
    memory_mb: float = 0.0
    spare_targets: dict[str, int] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    backoff: dict[str, LaunchPause] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    degraded: list[str] = field(default_factory=list)
    process_list: list[ProcessRow] = field(default_factory=list)

    def backoff_seconds_left(self) -> float:
        """The longest launch pause still running (0: none)."""
        return max((pause.seconds_left for pause in self.backoff.values()), default=0.0)

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["spares"] = self.spare  # the older name, kept for readers of /health
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PoolSnapshot:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known and k not in ("process_list", "backoff")}
        rows = [ProcessRow(**row) for row in data.get("process_list") or []]
        pauses = {account: LaunchPause(**pause) for account, pause in (data.get("backoff") or {}).items()}
        return cls(**values, process_list=rows, backoff=pauses)


@dataclass(frozen=True)
class WindowSnapshot:
    """One subscription window as last read: ``label`` in people's words, utilization (0..1)
    and percent, its status, ``state`` (its status, or ``reset_passed``), reset (epoch and ISO),
    seconds to the reset, and when it was read."""

    label: str = ""
    utilization: float | None = None
    percent: float | None = None
    status: str | None = None
    state: str | None = None
    resets_at: int | None = None
    resets_at_iso: str | None = None
    resets_in_seconds: int | None = None
    reset_passed: bool = False
    observed_at_iso: str | None = None


@dataclass(frozen=True)
class WindowsSnapshot:
    """An account's windows: the last reading's overall ``status`` and ``state`` now, the
    window that limits, whether overage is in use, the reading's age, and each window."""

    status: str | None = None
    state: str | None = None
    limiting: str | None = None
    using_overage: bool = False
    observed_at_iso: str | None = None
    age_seconds: int | None = None
    windows: dict[str, WindowSnapshot] = field(default_factory=dict)

    def refusing_for(self) -> int | None:
        """Seconds until the limiting window resets while the last reading refuses (None: it
        does not, or its reset has passed)."""
        if self.status != "rejected":
            return None
        window = self.windows.get(self.limiting or "")
        if window is None or window.reset_passed or not window.resets_in_seconds:
            return None
        return window.resets_in_seconds

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WindowsSnapshot:
        windows = {name: WindowSnapshot(**window) for name, window in (data.get("windows") or {}).items()}
        return cls(**{k: v for k, v in data.items() if k != "windows"}, windows=windows)


@dataclass(frozen=True)
class AccountSnapshot:
    """One account: its login kind, ``state`` (``ok``, ``refused``, ``failing``), seconds until
    it takes turns again, its login failure, turns and failovers, its extra usage option and
    refusals, and its windows."""

    login: str = ""
    state: str = "ok"
    available_in_s: int = 0
    failure: str = ""
    turns: int = 0
    failovers_from: int = 0
    extra_usage: str = "refuse"
    extra_usage_refusals: int = 0
    subscription: WindowsSnapshot = field(default_factory=WindowsSnapshot)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccountSnapshot:
        subscription = WindowsSnapshot.from_json(data.get("subscription") or {})
        return cls(**{k: v for k, v in data.items() if k != "subscription"}, subscription=subscription)


@dataclass(frozen=True)
class FeatureSnapshot:
    """One feature as the CLI's start-up probe found it: ``state`` ok, failed or unknown (not
    probed), and ``detail``, what was seen."""

    state: str
    detail: str | None = None


@dataclass
class TapCounters:
    """What the upstream tap has done since start (the tap owns and counts them): requests
    relayed, environment notes removed, requests dropped by the client, upstream errors, spares'
    warm-ups answered locally or removed from a later request, requests refused as not faithful,
    worker turns injected, and follow-ups answered from a worker's own turn."""

    requests: int = 0
    notes_removed: int = 0
    dropped: int = 0
    upstream_errors: int = 0
    warmups_answered: int = 0
    warmups_removed: int = 0
    refused: int = 0
    turns_injected: int = 0
    followups_answered: int = 0


@dataclass(frozen=True)
class TapSnapshot:
    """The tap as ``/health`` shows it: its loopback port, the upstream's origin (never a path or
    user info) and a copy of its counters."""

    port: int
    upstream: str
    counters: TapCounters = field(default_factory=TapCounters)

    def as_json(self) -> dict[str, Any]:
        return {"port": self.port, "upstream": self.upstream, **dataclasses.asdict(self.counters)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TapSnapshot:
        counted = {f.name for f in dataclasses.fields(TapCounters)}
        counters = TapCounters(**{k: v for k, v in data.items() if k in counted})
        return cls(int(data.get("port") or 0), str(data.get("upstream") or ""), counters)


@dataclass(frozen=True)
class BridgeStatus:
    """The engine's report (``/health`` behind a key): overall ``status`` (``ok``, ``limited``,
    ``degraded``) and why it is degraded, the CLI, its features' probe states, the pool, the
    first account's windows (``subscription``), every account, failovers since start, the
    upstream tap's counters (None: off) and which way conversations are served."""

    status: str = "ok"
    degraded: list[str] = field(default_factory=list)
    cli_path: str | None = None
    cli_version: str | None = None
    features: dict[str, FeatureSnapshot] = field(default_factory=dict)
    pool: PoolSnapshot = field(default_factory=PoolSnapshot)
    subscription: WindowsSnapshot = field(default_factory=WindowsSnapshot)
    accounts: dict[str, AccountSnapshot] = field(default_factory=dict)
    failovers: int = 0
    upstream_tap: TapSnapshot | None = None
    conversations: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """``/health``'s JSON: every snapshot as its fields, but for the pool's and the tap's own
        forms (an older name kept, the counters flat)."""
        data = dataclasses.asdict(self)
        data["pool"] = self.pool.as_json()
        data["upstream_tap"] = self.upstream_tap.as_json() if self.upstream_tap is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BridgeStatus:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["features"] = {name: FeatureSnapshot(**f) for name, f in (data.get("features") or {}).items()}
        values["pool"] = PoolSnapshot.from_json(data.get("pool") or {})
        values["subscription"] = WindowsSnapshot.from_json(data.get("subscription") or {})
        values["accounts"] = {name: AccountSnapshot.from_json(a) for name, a in (data.get("accounts") or {}).items()}
        tap = data.get("upstream_tap")
        values["upstream_tap"] = TapSnapshot.from_json(tap) if tap is not None else None
        return cls(**values)
