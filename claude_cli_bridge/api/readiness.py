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

from ..core.status import BridgeStatus

QUEUE_FULL_RETRY_AFTER = 2  # as a full queue's own refusal (pool/owner.py)


@dataclass
class Readiness:
    ready: bool
    reasons: list[str] = field(default_factory=list)  # codes only: open to anyone, it reveals nothing
    retry_after: int | None = None

    def body(self) -> dict[str, Any]:
        return {"ready": self.ready, "reasons": self.reasons}


def readiness(status: BridgeStatus, *, queue_size: int, draining: bool, drain_retry_after: int) -> Readiness:
    """``status`` is the engine's (``BridgeEngine.status``)."""
    waits: dict[str, int] = {}
    if draining:
        waits["draining"] = drain_retry_after
    backoff = status.pool.backoff_seconds_left()
    if backoff > 0:
        waits["cli_failing"] = max(1, int(backoff + 0.999))
    accounts = status.accounts
    if accounts:
        if not any(account.state == "ok" for account in accounts.values()):
            waits["account_refused"] = max(1, min(int(a.available_in_s or 1) for a in accounts.values()))
    else:
        left = status.subscription.refusing_for()
        if left:
            waits["account_refused"] = left
    if status.pool.waiting >= queue_size:
        waits["queue_full"] = QUEUE_FULL_RETRY_AFTER
    if not waits:
        return Readiness(True)
    return Readiness(False, list(waits), max(waits.values()))
