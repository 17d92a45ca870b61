"""Each key's share of each account's 5-hour window (``window_share`` in the accounts file).

The upstream reports the 5-hour window's utilization (0..1) on every response. When a turn
ends, the rise of its account's utilization since the reading charged last is charged to the
turn's key, for that window (known by its reset time). A key whose charges in an account's
current window reach its ``window_share`` is not given that account again until the window
resets; when that holds for every account of the key, its turn is a 429 naming the key and
the share (``accounts.book``).

Charging, exactly:

- the rise is measured between readings the bridge saw: the reading at a turn's end against
  the one charged before it, so the charges of all keys add up to the window's rise as seen
  by the bridge. Turns that run at the same time on one account are charged in the order they
  end: each the rise since the previous turn ended (its own use and whatever the others had
  used by then); use outside the bridge between two turns is charged to the next one.
- a reading of a new window (another reset time) is charged whole: the bridge cannot tell
  the turn's part from use before it in that window, and a share is a limit, so it errs on
  the key's side of using less.
- an account's very first reading only sets the baseline (nothing to compare with); after a
  restart the baseline is the account's last reading (``windows-*.json``) and the charges of
  the current window are read back from the usage ledger (``window_used``, ``window_reset``).

One owner, used from the event loop only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: The window a share is of.
SHARED_WINDOW = "five_hour"


@dataclass(frozen=True)
class WindowCharge:
    """What one turn used of its account's 5-hour window: a fraction (0..1) of the window
    that resets at ``resets_at`` (epoch seconds)."""

    account: str
    resets_at: int
    used: float


class WindowShares:
    def __init__(self) -> None:
        self._baseline: dict[str, tuple[float, int]] = {}  # account -> (utilization, reset) charged last
        self._used: dict[tuple[str, str, int], float] = {}  # (key, account, reset) -> fraction used

    def baseline(self, account: str, reading: tuple[float, int] | None) -> None:
        """The account's last reading before this server ran, or before its login was added
        or changed (nothing is charged for it); None: none known."""
        if reading is None:
            self._baseline.pop(account, None)
        else:
            self._baseline[account] = reading

    def load(self, rows: Iterable[dict[str, Any]]) -> None:
        """The charges the usage ledger recorded (``key_label``, ``account``, ``window_used``,
        ``window_reset``)."""
        for row in rows:
            key, account, used, reset = (row.get(f) for f in ("key_label", "account", "window_used", "window_reset"))
            if isinstance(key, str) and key and isinstance(account, str) and account:
                if isinstance(used, (int, float)) and isinstance(reset, int) and used > 0:
                    slot = (key, account, reset)
                    self._used[slot] = self._used.get(slot, 0.0) + float(used)

    def charge(self, key: str, account: str, reading: tuple[float, int] | None) -> WindowCharge | None:
        """Charge ``key`` with the rise up to ``reading`` (utilization, reset) of ``account``,
        the reading that ended its turn; None when nothing is charged (no reading, the first
        one, or no rise)."""
        if reading is None:
            return None
        utilization, reset = reading
        previous = self._baseline.get(account)
        self._baseline[account] = reading
        if previous is None:
            return None
        # Rounded: the upstream's readings are short decimals; float noise is not use.
        rise = round(utilization - previous[0] if previous[1] == reset else utilization, 6)
        if rise <= 0:
            return None
        if key:
            slot = (key, account, reset)
            self._used[slot] = round(self._used.get(slot, 0.0) + rise, 6)
        return WindowCharge(account, reset, rise)

    def used(self, key: str, account: str, resets_at: int) -> float:
        """What ``key`` used of ``account``'s window that resets at ``resets_at``."""
        return self._used.get((key, account, resets_at), 0.0)
