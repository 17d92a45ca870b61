"""The bridge with pool variations its settings do not expose, for benchmarks only.

    BENCH_MAX_SPARES_PER_PROFILE=8 python bench/bridge_with_limits.py
    BENCH_DEFER_SPARES=1 python bench/bridge_with_limits.py
    BENCH_SPARES_EVICT=1 python bench/bridge_with_limits.py

Runs ``python -m claude_cli_bridge`` after changing the pool, so bench/bench_pool.py can
measure what a change would give before anyone makes it:

- ``BENCH_MAX_SPARES_PER_PROFILE``: ``PoolLimits.max_spares_per_profile`` (4, no setting);
- ``BENCH_DEFER_SPARES``: spares are (re)launched only while no turn runs, so a burst's
  replacement spares do not compete for the CPU with the burst's own turns;
- ``BENCH_SPARES_EVICT``: a spare below its profile's target may retire the least recently
  used idle conversation to make room (the pool lets only the newest profile's first spare
  do that), one at a time.

These reach into the pool's private methods: they are measurements, not the way to change it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from claude_cli_bridge import engine
from claude_cli_bridge.__main__ import main
from claude_cli_bridge.pool import Pool, PoolLimits
from claude_cli_bridge.settings import Settings

_limits = engine._limits
_fill_spares = Pool._fill_spares


def _patched_limits(settings: Settings) -> PoolLimits:
    limits = _limits(settings)
    cap = os.environ.get("BENCH_MAX_SPARES_PER_PROFILE")
    return dataclasses.replace(limits, max_spares_per_profile=int(cap)) if cap else limits


def _fill_spares_evicting(self: Pool) -> None:
    """Pool._fill_spares, except that any profile short of its target may retire the least
    recently used idle conversation when there is no room (one at a time)."""
    if self._closing:
        return
    for profile, target in sorted(self._spare_targets().items(), key=lambda item: -self._recent.get(item[0], 0)):
        if self._backoff_error(profile) is not None:
            continue
        while self._count("spare", profile) + self._count_launching_spares(profile) < target:
            if not self._has_room():
                if not self._count("stopping") and self._held:
                    oldest = next(iter(self._held.values()))
                    self.counters["evictions"] += 1
                    self._retire(oldest)
                return
            self._start_launch(profile, (), None)


def _fill_spares_deferred(self: Pool) -> None:
    """No spare is launched while a turn runs; the owner fills them when the last turn returns."""
    if any(entry.state == "busy" for entry in self._entries.values()):
        return
    fill = _fill_spares_evicting if os.environ.get("BENCH_SPARES_EVICT") else _fill_spares
    fill(self)


engine._limits = _patched_limits  # BridgeEngine looks the function up when it is built
if os.environ.get("BENCH_DEFER_SPARES"):
    Pool._fill_spares = _fill_spares_deferred  # type: ignore[method-assign]
elif os.environ.get("BENCH_SPARES_EVICT"):
    Pool._fill_spares = _fill_spares_evicting  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
