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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from claude_cli_bridge.__main__ import main
from claude_cli_bridge.pool.placement import Placement


def _fill_spares_evicting(self: Placement[Any]) -> None:
    """Placement.fill_spares, except that any profile short of its target may retire the least
    recently used idle conversation when there is no room (one at a time)."""
    state = self._s
    if state.closing:
        return
    last_use = state.spares.recent
    for profile, target in sorted(self.spare_targets().items(), key=lambda item: -last_use.get(item[0], 0)):
        if state.backoff.refusal(profile) is not None:
            continue
        while state.table.count("spare", profile) + state.table.launching_spares(profile) < target:
            if not self.has_room():
                oldest = state.table.conversations.oldest()
                if not state.table.count("stopping") and oldest is not None:
                    state.counters["evictions"] += 1
                    state.table.retire(oldest)
                return
            self.start_launch(profile, (), None)


if os.environ.get("BENCH_SPARES_EVICT"):
    Placement.fill_spares = _fill_spares_evicting  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
