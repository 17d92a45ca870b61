"""The latest known state of the subscription's windows (5-hour, 7-day, overage).

One owner, updated by the engine from each ``RateLimitInfo`` a turn yields, read by /health,
/metrics, the dashboard, the start-up banner and ``doctor``. The state is also written to
``DATA_DIR/windows.json``, so a restarted server and ``doctor`` can show the last reading
with its age; nothing here guesses a value the upstream did not send (a window whose reset
time has passed keeps its last reading, marked ``reset_passed``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core.limits import WINDOW_LABELS, RateLimitInfo, window_label
from ..core.status import WindowSnapshot, WindowsSnapshot

log = logging.getLogger(__name__)

STATE_FILE = "windows.json"


class SubscriptionWindows:
    def __init__(
        self, data_dir: Path | None = None, clock: Callable[[], float] = time.time, file_name: str = STATE_FILE
    ):
        self._path = data_dir / file_name if data_dir is not None else None
        self._clock = clock
        self.status: str | None = None  # overall: allowed, allowed_warning, rejected
        self.limiting: str | None = None  # the window the overall status is about
        self.using_overage = False
        self.observed_at: float | None = None
        self.windows: dict[str, dict[str, Any]] = {}
        self.load()

    # -- updates -------------------------------------------------------------------------
    def update(self, info: RateLimitInfo) -> None:
        now = self._clock()
        self.status, self.limiting, self.using_overage, self.observed_at = (
            info.status,
            info.window,
            info.using_overage,
            now,
        )
        for reading in info.windows:
            self.windows[reading.name] = {
                "utilization": reading.utilization,
                "resets_at": reading.resets_at,
                "status": reading.status,
                "observed_at": now,
            }
        if info.window is not None:
            # The limiting window: the overall reset and status are about it (older CLIs send
            # no unifiedWindows, only these).
            entry = self.windows.setdefault(info.window, {"utilization": None, "resets_at": None, "status": None})
            entry["observed_at"] = now
            if info.resets_at is not None:
                entry["resets_at"] = info.resets_at
            if info.utilization is not None:
                entry["utilization"] = info.utilization
            if info.rejected or entry.get("status") is None:
                entry["status"] = info.status
        if info.overage_status is not None or info.overage_resets_at is not None:
            entry = self.windows.setdefault("overage", {"utilization": None, "resets_at": None, "status": None})
            entry.update(observed_at=now, status=info.overage_status or entry.get("status"))
            if info.overage_resets_at is not None:
                entry["resets_at"] = info.overage_resets_at
        self._save()

    # -- reading ---------------------------------------------------------------------------
    def rejection(self) -> tuple[str, int] | None:
        """(window, reset epoch) while the last reading says requests are refused."""
        if self.status != "rejected" or self.limiting is None:
            return None
        reset = (self.windows.get(self.limiting) or {}).get("resets_at")
        if reset is None or reset <= self._clock():
            return None
        return self.limiting, int(reset)

    def state(self) -> str | None:
        """The overall state now: the last reading's status, except that a rejection whose
        reset has passed is ``reset_passed`` (the refusal is over; nothing newer was read, so
        nothing is claimed about now). None before any reading."""
        if self.status == "rejected" and self.rejection() is None:
            return "reset_passed"
        return self.status

    def view(self) -> WindowsSnapshot:
        """A typed copy (``core.status``): overall status (the last reading) and ``state`` (now,
        see ``state``), and each window with label, utilization, percent, status, ``state`` (its
        status, or ``reset_passed`` once its reset time is behind us), reset (epoch and ISO)
        and seconds left; no windows before any reading."""
        now = self._clock()
        windows = {}
        order = [*WINDOW_LABELS, *sorted(set(self.windows) - set(WINDOW_LABELS))]
        for name in order:
            entry = self.windows.get(name)
            if entry is None:
                continue
            utilization = entry.get("utilization")
            reset = entry.get("resets_at")
            windows[name] = WindowSnapshot(
                label=window_label(name),
                utilization=utilization,
                percent=None if utilization is None else round(utilization * 100, 1),
                status=entry.get("status"),
                state="reset_passed" if reset is not None and reset <= now else entry.get("status"),
                resets_at=reset,
                resets_at_iso=_iso(reset),
                resets_in_seconds=None if reset is None else max(0, int(reset - now)),
                reset_passed=reset is not None and reset <= now,
                observed_at_iso=_iso(entry.get("observed_at")),
            )
        return WindowsSnapshot(
            status=self.status,
            state=self.state(),
            limiting=self.limiting,
            using_overage=self.using_overage,
            observed_at_iso=_iso(self.observed_at),
            age_seconds=None if self.observed_at is None else max(0, int(now - self.observed_at)),
            windows=windows,
        )

    def describe(self) -> list[str]:
        """Human lines, one per window (banner, doctor): "5-hour: 42% used, resets ..."."""
        view = self.view()
        if not view.windows:
            return []
        lines = []
        for window in view.windows.values():
            used = "usage unknown" if window.percent is None else f"{window.percent:g}% used"
            state = f" ({window.status})" if window.status not in (None, "allowed") else ""
            if window.resets_at is None:
                reset = ""
            elif window.reset_passed:
                reset = f", reset at {window.resets_at_iso} (passed; no newer reading)"
            else:
                reset = f", resets {window.resets_at_iso} (in {human_duration(window.resets_in_seconds)})"
            lines.append(f"{window.label}: {used}{state}{reset}")
        age = view.age_seconds
        lines.append(f"(last reading {human_duration(age)} ago)" if age else "(just read)")
        return lines

    # -- persistence -------------------------------------------------------------------------
    def load(self) -> None:
        if self._path is None or not self._path.is_file():
            return
        try:
            state = json.loads(self._path.read_text(encoding="utf-8"))
            self.status = state.get("status")
            self.limiting = state.get("limiting")
            self.using_overage = bool(state.get("using_overage"))
            self.observed_at = state.get("observed_at")
            self.windows = {str(k): dict(v) for k, v in (state.get("windows") or {}).items() if isinstance(v, dict)}
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("ignoring unreadable %s: %s", self._path, exc)

    def _save(self) -> None:
        if self._path is None:
            return
        state = {
            "status": self.status,
            "limiting": self.limiting,
            "using_overage": self.using_overage,
            "observed_at": self.observed_at,
            "windows": self.windows,
        }
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self._path.with_suffix(".tmp")
            temporary.write_text(json.dumps(state), encoding="utf-8")
            os.replace(temporary, self._path)
        except OSError as exc:  # the state in memory is what the server serves; the file is a courtesy
            with contextlib.suppress(Exception):
                log.warning("cannot write %s: %s", self._path, exc)


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
