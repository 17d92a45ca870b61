"""Who a request comes from: a client key's name and what that key may do.

Conversations, stored responses and remembered thinking belong to the caller that made them
(``tenant``): another key never reaches them. Without keys every request is the one anonymous
caller (``name`` None), as before keys existed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """``accounts``: the accounts this caller may use, in order of preference. ``models`` None:
    any model; else the names or aliases it may ask for. The limits None: unlimited."""

    name: str | None
    accounts: tuple[str, ...]
    models: tuple[str, ...] | None = None
    max_concurrent: int | None = None
    requests_per_minute: int | None = None
    tokens_per_day: int | None = None
    tokens_per_week: int | None = None
    window_share: float | None = None  # the most of each account's 5-hour window it may use

    @property
    def tenant(self) -> str:
        """What owns per-conversation state: the key's name ("" for the anonymous caller)."""
        return self.name or ""

    @property
    def label(self) -> str:
        """For logs, the ledger, metrics and the dashboard: the name, never the key."""
        return self.name or ""
