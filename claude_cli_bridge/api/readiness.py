"""Readiness: can this bridge take a turn now? For a router's health check (``GET /ready``).

Read from the state the bridge already keeps, so it spends no quota and starts no process:
not draining, the CLI launching (no account in launch backoff), an account allowed (with
accounts: one whose state is ``ok``; else the subscription's last reading is not a rejection
whose reset is still ahead) and room in the queue. Not ready carries a ``Retry-After``: the
longest of the reasons' waits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

QUEUE_FULL_RETRY_AFTER = 2  # as a full queue's own refusal (pool/owner.py)


@dataclass
class Readiness:
    ready: bool
    reasons: list[str] = field(default_factory=list)  # codes only: open to anyone, it reveals nothing
    retry_after: int | None = None

    def body(self) -> dict[str, Any]:
        return {"ready": self.ready, "reasons": self.reasons}


def readiness(status: dict[str, Any], *, queue_size: int, draining: bool, drain_retry_after: int) -> Readiness:
    """``status`` is the engine's (``BridgeEngine.status``); missing parts count as fine."""
    waits: dict[str, int] = {}
    if draining:
        waits["draining"] = drain_retry_after
    pool = status.get("pool") or {}
    backoff = [b.get("seconds_left") or 0 for b in (pool.get("backoff") or {}).values()]
    if any(left > 0 for left in backoff):
        waits["cli_failing"] = max(1, int(max(backoff) + 0.999))
    subscription = status.get("subscription") or {}
    accounts = status.get("accounts") or {}
    if accounts:
        if not any(account.get("state") == "ok" for account in accounts.values()):
            waits["account_refused"] = max(1, min(int(a.get("available_in_s") or 1) for a in accounts.values()))
    elif subscription.get("status") == "rejected":
        window = (subscription.get("windows") or {}).get(subscription.get("limiting") or "") or {}
        left = window.get("resets_in_seconds")
        if left and not window.get("reset_passed"):
            waits["account_refused"] = int(left)
    if pool.get("waiting", 0) >= queue_size:
        waits["queue_full"] = QUEUE_FULL_RETRY_AFTER
    if not waits:
        return Readiness(True)
    return Readiness(False, list(waits), max(waits.values()))
