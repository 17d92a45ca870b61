"""Launch backoff: a CLI that dies before its first turn pauses launches (pure bookkeeping).

Keyed by account: a CLI that exits at once (a broken binary, an unreadable configuration)
fails every profile of that login alike, so one pause covers them all. A profile that carries
the caller's own CLI options (a schema, tools, a forced tool) pauses alone: one caller's bad
options must not stop everybody's turns (``backoff_key``). The pause doubles from 1 s to
``max_seconds``; the first process of the key that launched after the last failure and works
ends it. The pool (``owner``) owns one ``LaunchBackoff`` and asks it before every launch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..cli.profile import Profile
from ..core.status import LaunchPause
from ..errors import CliUnavailable

log = logging.getLogger(__name__)

BackoffKey = str | Profile  # an account's name, or one profile


def backoff_key(profile: Profile) -> BackoffKey:
    """What a failed launch of this profile pauses: the profile alone when it carries options
    the CLI validates from the caller's input (a schema, tools, a forced tool), else its
    account."""
    own = profile.json_schema is not None or profile.tools_json is not None or profile.tool_choice_json is not None
    return profile if own else profile.account


def backoff_keys(profile: Profile) -> set[BackoffKey]:
    """The backoffs that stop a launch of this profile: its account's, and its own if it has one."""
    return {profile.account, backoff_key(profile)}


@dataclass
class Pause:
    failures: int = 0
    until: float = 0.0
    last_error: str = ""
    noted_at: float = 0.0  # when the last failure was seen


class LaunchBackoff:
    """Every pause in force. ``launching(key)`` counts launches in flight for a key (the
    pool's entries): while paused, one launch at a time may try again once the pause ends."""

    def __init__(self, clock: Callable[[], float], max_seconds: float, launching: Callable[[BackoffKey], int]):
        self._clock = clock
        self._max_seconds = max_seconds
        self._launching = launching
        self._pauses: dict[BackoffKey, Pause] = {}

    def __bool__(self) -> bool:
        return bool(self._pauses)

    def failed(self, profile: Profile, detail: str, launch_began: float) -> float | None:
        """Count a failed launch; the pause in seconds until the next attempt may start (the
        same attempt as the last failure, a burst of spares started together, is not counted
        again, and only makes sure the pause runs from now)."""
        pause = self._pauses.setdefault(backoff_key(profile), Pause())
        pause.last_error = detail.strip()[-500:]
        if pause.failures and launch_began < pause.noted_at:
            # Not counted again, but no new attempt right after it either: on a slow machine
            # the pause could have run out while this launch was in flight.
            delay = self._delay(pause)
            pause.until = max(pause.until, self._clock() + delay)
            return delay
        pause.failures += 1
        pause.noted_at = self._clock()
        delay = self._delay(pause)
        pause.until = self._clock() + delay
        log.error(
            "the Claude CLI failed to start (%d in a row); next attempt in %.0f s: %s",
            pause.failures, delay, pause.last_error or "no output",
        )  # fmt: skip
        return delay

    def _delay(self, pause: Pause) -> float:
        """1 s doubling with each failure in a row, at most ``max_seconds``."""
        return min(self._max_seconds, 2.0 ** (pause.failures - 1))

    def refusal(self, profile: Profile) -> CliUnavailable | None:
        """The refusal while the profile's account, or the profile itself (the caller's own
        options), is paused; None when a launch may be tried."""
        for key in backoff_keys(profile):
            pause = self._pauses.get(key)
            if pause is None or not pause.failures:
                continue
            left = pause.until - self._clock()
            if left <= 0 and not self._launching(key):
                continue  # time for the next attempt
            return CliUnavailable(
                f"The Claude CLI fails to start ({pause.failures} attempts in a row): "
                f"{pause.last_error or 'it exited at once'}",
                retry_after=max(1, round(left)),
            )
        return None

    def touches(self, profile: Profile) -> bool:
        """Whether any pause applies to this profile (spares then launch one at a time)."""
        return any(key in self._pauses for key in backoff_keys(profile))

    def worked(self, profile: Profile, launch_began: float) -> None:
        """A process of ``profile`` launched since the last failure works: its account's pause
        (the binary and the login work) and its profile's end."""
        for key in backoff_keys(profile):
            pause = self._pauses.get(key)
            if pause is not None and launch_began >= pause.noted_at:
                del self._pauses[key]

    def snapshot(self) -> dict[str, LaunchPause]:
        """For /health ``pool.backoff``: each paused account."""
        return {
            account: LaunchPause(p.failures, round(max(0.0, p.until - self._clock()), 1), p.last_error)
            for account, p in self._pauses.items()
            if p.failures and isinstance(account, str)
        }

    def degraded(self) -> list[str]:
        """One line per paused account, with the CLI's own words."""
        reasons = []
        for account, pause in self._pauses.items():
            if pause.failures and isinstance(account, str):
                left = max(0.0, pause.until - self._clock())
                reasons.append(
                    f"new CLI processes of account {account} exit before their first turn "
                    f"({pause.failures} in a row; next attempt in {left:.0f} s): {pause.last_error or 'no output'}"
                )
        return reasons
