"""What the bridge knows of each account right now, and the choice of account for a turn.

One owner of per-account state (used from the event loop only): each account's subscription
windows (``windows.SubscriptionWindows``, one file per account), whether its upstream refused
it and until when, whether its login failed, and counts of turns and failovers.

The windows decide:

- a new conversation goes to the first account in the caller's list that allows a turn (not
  refused, or its reset has passed; an account never read yet allows);
- a held conversation stays on the account that holds it while that account allows;
- a refused turn marks its account refused until its reset (a failing login: for
  ``LOGIN_RETRY_SECONDS``), and the engine runs the turn on the next account that allows;
- when none allows, ``refusal`` is a 429 whose Retry-After is the earliest moment one may.

With a single account only a used-up window (the windows' own reading, until its reset)
stops turns before they start: any other refusal (a plain 429, a failing login) is the
upstream's answer to that turn, and the next request tries again, as before accounts existed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..cli.result import window_exhausted
from ..core.caller import Caller
from ..core.limits import RateLimitInfo, claim_family, family_claim, limits_model, model_family
from ..core.status import AccountSnapshot
from ..errors import AccountsRefused, BridgeError, CliNotLoggedIn, KeyLimitReached, UpstreamError
from .config import DEFAULT_ACCOUNT, AccountsConfig
from .shares import SHARED_WINDOW, WindowCharge, WindowShares
from .windows import SubscriptionWindows, human_duration

#: How long an account whose login failed is left alone before a turn tries it again.
LOGIN_RETRY_SECONDS = 60.0
#: A 429 that names no reset (an API-key login, no window reading): refused this long.
DEFAULT_REFUSAL_SECONDS = 30.0


@dataclass
class AccountState:
    windows: SubscriptionWindows
    refused_until: float = 0.0  # wall clock
    failing_until: float = 0.0
    failure: str = ""  # the last login failure, for /health and `accounts` (no secret)
    turns: int = 0
    failovers_from: int = 0
    # The upstream's last plain throttle (a 429 with retry-after and no used-up window):
    # (wall-clock time it was seen, its retry-after in seconds).
    throttle: tuple[float, float] | None = None
    # Refusals of one model family's window (seven_day_opus...): family -> until (wall clock).
    refused_family: dict[str, float] = field(default_factory=dict)
    extra_usage_refusals: int = 0  # turns the upstream refused as extra usage, since start


def windows_file(name: str) -> str:
    """The default account keeps the file name it had before accounts existed."""
    return "windows.json" if name == DEFAULT_ACCOUNT else f"windows-{name}.json"


def is_refusal(error: BaseException) -> bool:
    """An error that says this account cannot take the turn now (another may): the upstream's
    429 or a login the upstream no longer accepts."""
    if isinstance(error, CliNotLoggedIn):
        return True
    return isinstance(error, UpstreamError) and error.status in (401, 403, 429)


class AccountBook:
    def __init__(self, config: AccountsConfig, data_dir: Path | None, clock: Callable[[], float] = time.time):
        self.config = config
        self._clock = clock
        self._data_dir = data_dir
        self.states = {account.name: self._new_state(account.name) for account in config.accounts}
        self.failovers = 0
        # Each key's share of each account's 5-hour window (``window_share``): the baseline is
        # each account's last reading; run/server.py loads the current windows' charges.
        self.shares = WindowShares()
        for name in self.states:
            self.shares.baseline(name, self.five_hour(name))

    def _new_state(self, name: str) -> AccountState:
        return AccountState(SubscriptionWindows(self._data_dir, clock=self._clock, file_name=windows_file(name)))

    def apply(self, config: AccountsConfig) -> None:
        """The accounts file's accounts, read again: an added account starts from its last
        windows (its file), a removed one is forgotten (a turn still running on it ends
        without being counted), a changed login is a fresh start of its refusals."""
        old = {account.name: account for account in self.config.accounts}
        states = {}
        fresh = []
        for account in config.accounts:
            kept = self.states.get(account.name) if old.get(account.name) == account else None
            states[account.name] = kept if kept is not None else self._new_state(account.name)
            if kept is None:
                fresh.append(account.name)
        self.states, self.config = states, config
        for name in fresh:
            self.shares.baseline(name, self.five_hour(name))

    # -- reading -----------------------------------------------------------------------
    def windows(self, name: str = DEFAULT_ACCOUNT) -> SubscriptionWindows:
        return self.states[name].windows

    def until(self, name: str, model: str | None = None) -> float:
        """When the account allows a turn of ``model`` again (0: it does now). A window of one
        model family (``seven_day_opus``) holds back that family's turns only; ``model`` None
        asks about the account as a whole, which such a window leaves serving."""
        state = self.states[name]
        now = self._clock()
        moments = [moment for moment in (state.refused_until, state.failing_until) if moment > now]
        family = model_family(model)
        if family is not None and state.refused_family.get(family, 0.0) > now:
            moments.append(state.refused_family[family])
        rejection = state.windows.rejection()
        if rejection is not None and limits_model(rejection[0], model) and not self._extra_usage_allowed(name):
            moments.append(float(rejection[1]))
        return max(moments) if moments else 0.0

    def _extra_usage_allowed(self, name: str) -> bool:
        """The account takes turns the upstream bills as extra usage (``extra_usage = "allow"``)
        and its windows say that is what a turn now is (used up, overage allowed)."""
        account = next((a for a in self.config.accounts if a.name == name), None)
        return account is not None and account.extra_usage == "allow" and self.states[name].windows.using_overage

    def five_hour(self, name: str) -> tuple[float, int] | None:
        """The account's last 5-hour reading (utilization, reset epoch), if it has one."""
        entry = self.states[name].windows.windows.get(SHARED_WINDOW) or {}
        utilization, reset = entry.get("utilization"), entry.get("resets_at")
        if isinstance(utilization, (int, float)) and isinstance(reset, (int, float)):
            return float(utilization), int(reset)
        return None

    def current_five_hour(self, name: str) -> tuple[float, int] | None:
        """``five_hour`` while its window has not reset yet (None: no reading of the current
        window: nothing is known to be used of it)."""
        reading = self.five_hour(name) if name in self.states else None
        return reading if reading is not None and reading[1] > self._clock() else None

    def share_until(self, caller: Caller, name: str) -> float:
        """When ``caller`` may use ``name`` again after using its ``window_share`` of the
        account's current 5-hour window (its reset); 0 while it may."""
        if caller.window_share is None or caller.name is None:
            return 0.0
        reading = self.current_five_hour(name)
        if reading is None:
            return 0.0
        used = self.shares.used(caller.name, name, reading[1])
        return float(reading[1]) if used >= caller.window_share else 0.0

    def allows(self, name: str, model: str | None = None) -> bool:
        return self.until(name, model) == 0.0

    def order(self, caller: Caller, holder: str | None = None, model: str | None = None) -> list[str]:
        """The caller's accounts that allow a turn of ``model`` now, in the order to try them:
        the one holding the conversation first (its process is warm), then the caller's preference."""
        allowed = [
            name
            for name in caller.accounts
            if name in self.states and self.allows(name, model) and not self.share_until(caller, name)
        ]
        if holder in allowed:
            allowed.remove(holder)
            allowed.insert(0, holder)
        return allowed

    def refusal(self, caller: Caller, model: str | None = None) -> BridgeError:
        """The 429 when none of the caller's accounts allows a turn of ``model``: Retry-After
        at the earliest."""
        now = self._clock()
        shared = self._share_refusal(caller, model)
        if shared is not None:
            return shared
        if len(caller.accounts) == 1:
            state = self.states[caller.accounts[0]]
            rejection = state.windows.rejection()
            if rejection is not None and limits_model(rejection[0], model):
                return window_exhausted(rejection[0], rejection[1], "", now)  # which window, and its reset
            family = model_family(model)
            if family is not None and state.refused_family.get(family, 0.0) > now:
                return window_exhausted(family_claim(family), math.ceil(state.refused_family[family]), "", now)
        moments = [self.until(name, model) for name in caller.accounts if name in self.states]
        earliest = min((m for m in moments if m > now), default=now + DEFAULT_REFUSAL_SECONDS)
        wait = max(1, math.ceil(earliest - now))
        failing = [name for name in caller.accounts if self.states[name].failing_until > now]
        why = "their logins fail" if failing and len(failing) == len(caller.accounts) else "their limits are reached"
        names = ", ".join(caller.accounts)
        return AccountsRefused(
            f"None of the accounts this key may use ({names}) can take a turn now: {why}. "
            f"The earliest is available again in {wait} s.",
            retry_after=wait,
        )

    def _share_refusal(self, caller: Caller, model: str | None) -> KeyLimitReached | None:
        """The 429 naming the key's ``window_share`` when that share is what stops it on some
        account and no other account of the key allows the turn."""
        names = [name for name in caller.accounts if name in self.states]
        held = {name: self.share_until(caller, name) for name in names}
        if not any(held.values()):
            return None
        now = self._clock()
        moments = [max(held[name], self.until(name, model)) for name in names]
        wait = max(1, math.ceil(min(moments) - now))
        spent = [name for name in names if held[name]]
        which = ", ".join(spent)
        return KeyLimitReached(
            f"The key {caller.name!r} used its window_share ({caller.window_share:g}) of the 5-hour window of "
            f"account(s) {which}; the earliest frees in {human_duration(wait)} (at the window's reset).",
            retry_after=wait,
        )

    # -- updates -----------------------------------------------------------------------
    def charge(self, caller: Caller, name: str) -> WindowCharge | None:
        """A turn of ``caller`` on ``name`` ended: charge its key the rise of the account's
        5-hour utilization since the reading charged last (``accounts.shares``)."""
        if name not in self.states:
            return None
        return self.shares.charge(caller.name or "", name, self.five_hour(name))

    def read(self, name: str, info: RateLimitInfo) -> None:
        """A window reading for an account (the CLI's rate-limit event)."""
        if name in self.states:  # not an account removed while its turn ran
            self.states[name].windows.update(info)

    def served(self, name: str) -> None:
        state = self.states.get(name)
        if state is None:
            return
        state.turns += 1
        state.failing_until, state.failure = 0.0, ""

    def refused(self, name: str, error: BaseException) -> None:
        """The account refused a turn: mark it until its reset (or for a while)."""
        state = self.states.get(name)
        if state is None:
            return
        now = self._clock()
        login = isinstance(error, CliNotLoggedIn) or (isinstance(error, UpstreamError) and error.status in (401, 403))
        until = now + float(getattr(error, "retry_after", None) or DEFAULT_REFUSAL_SECONDS)
        limit = getattr(error, "limit", None)
        family = claim_family(limit[0]) if limit is not None else None
        if family is not None:
            # One family's window, kept apart from the windows' overall status, which the next
            # answer for another model (allowed) overwrites: the other models keep serving.
            state.refused_family[family] = max(state.refused_family.get(family, 0.0), until)
            return
        if len(self.states) == 1:
            return  # nowhere else to go: each request asks the upstream itself (windows aside)
        if login:
            state.failing_until = now + LOGIN_RETRY_SECONDS
            state.failure = "the login is refused (not logged in, or the token was revoked)"
        else:
            state.refused_until = max(state.refused_until, until)

    def throttled(self, name: str, seconds: float) -> None:
        """The upstream throttled this account (a 429 with ``retry-after``, no window used up)."""
        if name in self.states:
            self.states[name].throttle = (self._clock(), seconds)

    def throttle_since(self, name: str, since: float) -> float | None:
        """The retry-after of a throttle seen at or after ``since`` (wall clock), if any."""
        throttle = self.states[name].throttle if name in self.states else None
        return throttle[1] if throttle is not None and throttle[0] >= since else None

    def refused_as_extra_usage(self, name: str) -> None:
        if name in self.states:
            self.states[name].extra_usage_refusals += 1

    def failed_over(self, name: str) -> None:
        if name in self.states:
            self.states[name].failovers_from += 1
        self.failovers += 1

    def snapshot(self) -> dict[str, AccountSnapshot]:
        """Per account (``core.status``): its login kind, whether it allows a turn, until when,
        its extra usage, its windows."""
        now = self._clock()
        result = {}
        for account in self.config.accounts:
            state = self.states[account.name]
            until = self.until(account.name)
            if state.failing_until > now:
                condition = "failing"
            elif until:
                condition = "refused"
            else:
                condition = "ok"
            result[account.name] = AccountSnapshot(
                login=account.kind,
                state=condition,
                available_in_s=max(0, math.ceil(until - now)) if until else 0,
                failure=state.failure if condition == "failing" else "",
                turns=state.turns,
                failovers_from=state.failovers_from,
                extra_usage=account.extra_usage,  # the account's option: refuse or allow
                extra_usage_refusals=state.extra_usage_refusals,
                subscription=state.windows.view(),
            )
        return result
