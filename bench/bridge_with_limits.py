"""The bridge with a pool variation its settings do not expose, for benchmarks only.

    BENCH_SPARES_EVICT=1 python bench/bridge_with_limits.py

Runs ``python -m claude_cli_bridge`` after changing the pool, so bench/bench_pool.py can
measure what a change would give before anyone makes it: with ``BENCH_SPARES_EVICT``, a spare
below its profile's target may retire the least recently used idle conversation to make room
(the pool lets only the newest profile's first spare do that), one at a time. (The variations
measured before, 8 spares a profile and replacements deferred while turns run, are now
``MAX_SPARES_PER_PROFILE`` and the pool's own behaviour.)

This reaches into the pool's private methods: it is a measurement, not the way to change it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from claude_cli_bridge.__main__ import main
from claude_cli_bridge.pool import Pool


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


if os.environ.get("BENCH_SPARES_EVICT"):
    Pool._fill_spares = _fill_spares_evicting  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
