"""Spare demand: how many idle processes each launch profile should have (pure bookkeeping).

Per profile, as many as the peak of concurrent new conversations (on workers: concurrent
turns) seen in the last ``window_seconds``, at most ``max_per_profile``, and at least one for
the ``recent_profiles`` most recently used profiles. The pool (``owner``) tells it of every
request (``used``), every turn that took an idle or new process (``began``) and every such
turn's end (``ended``), and reads ``targets``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from ..cli.profile import Profile


class SpareDemand:
    def __init__(
        self, clock: Callable[[], float], window_seconds: float, recent_profiles: int, max_per_profile: int
    ) -> None:
        self._clock = clock
        self._window = window_seconds
        self._recent_profiles = recent_profiles
        self._max = max_per_profile
        self.recent: OrderedDict[Profile, float] = OrderedDict()  # profiles by last use, oldest first
        self._in_flight: dict[Profile, int] = {}
        self._peaks: deque[tuple[float, Profile, int]] = deque()

    def warm(self, profiles: Iterable[Profile]) -> None:
        """Profiles to keep spares for from the start (the server's default)."""
        now = self._clock()
        for profile in profiles:
            self.recent[profile] = now

    def used(self, profile: Profile) -> None:
        self.recent[profile] = self._clock()
        self.recent.move_to_end(profile)
        while len(self.recent) > max(self._recent_profiles, 1) * 4:
            self.recent.popitem(last=False)

    def began(self, profile: Profile) -> None:
        count = self._in_flight.get(profile, 0) + 1
        self._in_flight[profile] = count
        self._peaks.append((self._clock(), profile, count))

    def ended(self, profile: Profile) -> None:
        self._in_flight[profile] = max(0, self._in_flight.get(profile, 0) - 1)

    def forget(self, account: str) -> None:
        """No more spares for ``account``'s profiles (its login changed or is gone)."""
        for profile in [p for p in self.recent if p.account == account]:
            del self.recent[profile]
        for profile in [p for p in self._in_flight if p.account == account]:
            del self._in_flight[profile]
        self._peaks = deque(peak for peak in self._peaks if peak[1].account != account)

    def latest(self) -> list[Profile]:
        """Profiles by last use, most recent first."""
        return list(reversed(self.recent))

    def targets(self) -> dict[Profile, int]:
        """Spares wanted per profile."""
        horizon = self._clock() - self._window
        while self._peaks and self._peaks[0][0] < horizon:
            self._peaks.popleft()
        targets = dict.fromkeys(self.latest()[: self._recent_profiles], 1)
        for _, profile, count in self._peaks:
            if profile in targets or count > 1:
                targets[profile] = max(targets.get(profile, 0), min(count, self._max))
        return targets
