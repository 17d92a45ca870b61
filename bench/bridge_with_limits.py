"""The bridge with pool limits its settings do not expose, for benchmarks only.

    BENCH_MAX_SPARES_PER_PROFILE=8 python bench/bridge_with_limits.py

Runs ``python -m claude_cli_bridge`` after replacing ``PoolLimits.max_spares_per_profile``
(4 by default, and no setting) with the variable's value, so bench/bench_pool.py can measure
what a burst of new conversations would get if the pool kept more spares a profile. Nothing
else changes.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from claude_cli_bridge import engine
from claude_cli_bridge.__main__ import main
from claude_cli_bridge.pool import PoolLimits
from claude_cli_bridge.settings import Settings

_limits = engine._limits


def _patched(settings: Settings) -> PoolLimits:
    limits = _limits(settings)
    cap = os.environ.get("BENCH_MAX_SPARES_PER_PROFILE")
    return dataclasses.replace(limits, max_spares_per_profile=int(cap)) if cap else limits


engine._limits = _patched  # BridgeEngine looks the function up when it is built

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
