"""The engine: answers a TurnRequest with a CLI turn from the pool. The APIs' only way in.

On workers (the tap on, and a CLI the ``workers`` probe accepts) the bridge owns the
conversation: any warm process launched with the turn's settings takes the turn, a one-line
placeholder is its prompt, and the tap writes the caller's conversation into its upstream
request (``tap.inject``, built by ``cli.worker.assignment_for``). Without workers a request's
history (every message but the last) must be what the leased CLI process holds; the pool
finds a held process for a follow-up or launches one resumed from a transcript of the
history, and a history ending in tool results is continued by the CLI itself.

A turn reads as a straight line (``stream``): the checks no CLI turn could answer
(``engine.checks``), then the plan (``plan``: caller, launch profile, the conversation with
remembered thinking put back, the holder; ``engine.plan``), then, account by account, the
lease and the run (``engine.run.TurnRunner``: stop sequences, the load time Ollama reports).

Accounts (``accounts.book``): each turn runs on one of the caller's accounts, the one holding
the conversation if it allows, else the first that allows. A turn its account refuses before
anything reached the client (the upstream's 429, a login it no longer accepts) is run again
at once on the next account that allows, rebuilt from the history: the caller gets its
answer and never sees the refusal. Conversations and remembered thinking belong to the
caller's tenant (its key's name): another key's identical history gets a process of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from ..accounts.book import AccountBook, is_refusal
from ..accounts.config import AccountsConfig, single_account
from ..accounts.credentials import account_env
from ..accounts.windows import SubscriptionWindows
from ..cli.launch import Launcher, process_env
from ..cli.probe import ProbeReport, workers_supported
from ..cli.profile import Profile, cli_retries, profile_for
from ..cli.version import FEATURE_MINIMUMS, dotted
from ..core.caller import Caller
from ..core.messages import Message
from ..core.models import resolve_model
from ..core.record import note
from ..core.status import BridgeStatus
from ..core.turn import TurnEvent, TurnRequest
from ..errors import (
    BridgeError,
    CreditsRequired,
    ExtraUsageRefused,
    UpstreamError,
)
from ..pool import Pool, PoolLimits
from ..settings import Settings
from ..tap import tap_for
from ..tap.headers import rate_limit_from_headers
from .checks import check_request, ends_with_tool_results
from .plan import TurnPlan
from .run import TurnRunner
from .thinking import ThinkingMemory

log = logging.getLogger(__name__)


class BridgeEngine:
    def __init__(
        self,
        settings: Settings,
        cli_path: str,
        cli_version: str = "",
        *,
        features: ProbeReport | None = None,
        state_dir: Path | None = None,
        accounts: AccountsConfig | None = None,
        book: AccountBook | None = None,
    ):
        self.settings = settings
        self.cli_path = cli_path
        self.cli_version = cli_version
        self.features = features or ProbeReport.unprobed(cli_version)
        self.accounts = accounts or (book.config if book is not None else single_account())
        state_dir = state_dir or Path(settings.state_dir) / f"run-{uuid.uuid4().hex[:8]}"
        environ = self._environ = process_env()
        self._state_dir = state_dir
        self.launcher = Launcher(
            cli_path,
            state_dir,
            environ,
            settings.cli_work_dir,
            cli_retries(settings.cli_max_retries, settings.fallback_model),
            fallback_model=settings.fallback_model,
            account_envs=self._account_envs(self.accounts),
        )
        # The upstream tap (tap/): every CLI process sends its upstream requests through it.
        self.tap = tap_for(settings, self.launcher.base_env, self._upstream_headers)
        self.launcher.tap = self.tap
        self.launcher.warm_spares = settings.warm_spares
        # Workers (tap.inject): the bridge owns the conversation and any warm process of the
        # turn's launch settings serves any turn. Needs the tap, and this CLI's requests in
        # the shape the tap knows (the ``workers`` probe).
        self.workers = self.tap is not None and workers_supported(self.features, cli_version)
        self.launcher.workers = self.workers
        self.launcher.worker_max_turns = settings.worker_max_turns
        self.pool = Pool(self.launcher, pool_limits(settings))
        self.pool.workers = self.workers
        self.thinking = ThinkingMemory()
        # Per account: its subscription windows (from the CLI's rate_limit_event lines, OAuth
        # logins only), refusals and failing logins.
        self.book = book if book is not None else AccountBook(self.accounts, settings.data_dir)
        self.anonymous = Caller(None, self.accounts.names)
        self.runner = TurnRunner(self.pool, self.tap, self.thinking, self.book, settings, self.workers)

    @property
    def windows(self) -> SubscriptionWindows:
        """The first account's windows (the only account's without an accounts file)."""
        return self.book.windows(self.accounts.names[0])

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        if self.tap is not None:
            await self.tap.start()
        self.launcher.prepare()
        model = self.resolve_model(self.settings.default_model)
        default = Profile(model=model, effort=self.settings.default_effort or None, account=self.accounts.names[0])
        # On workers a failover turn is warm too when the next account has a worker: each
        # account's default profile gets one, within SPARE_PROFILES (the first account last,
        # so it is the most recent).
        accounts = self.accounts.names[: max(1, self.settings.spare_profiles)] if self.workers else [default.account]
        self.pool.start([dataclasses.replace(default, account=name) for name in reversed(accounts)])

    def apply_accounts(self, config: AccountsConfig) -> list[str]:
        """The accounts file's ``[accounts.*]`` read again (``accounts.reload``): later turns
        use the new accounts. The processes of an account removed, or whose environment
        changes (its login, or a new account's secret variable it must no longer carry), are
        stopped once idle (a running turn finishes); those of every other account stay warm.
        Returns the accounts whose processes are stopped."""
        envs = self._account_envs(config)
        retired = [name for name in self.accounts.names if name not in envs or envs[name] != self.launcher.env_of(name)]
        self.launcher.replace_account_envs(envs)
        self.book.apply(config)
        self.accounts = config
        self.anonymous = Caller(None, config.names)
        for name in retired:
            self.pool.retire_account(name)
        log.info(
            "accounts applied: %s; processes stopped for %s", ", ".join(config.names) or "none",
            ", ".join(retired) or "none",
        )  # fmt: skip
        return retired

    def _account_envs(self, config: AccountsConfig) -> dict[str, dict[str, str]]:
        """Each account's CLI environment: its login and no other's (``accounts.credentials``)."""
        return {
            account.name: account_env(account, config, self._environ, self._state_dir) for account in config.accounts
        }

    async def close(self) -> None:
        await self.pool.close(self.settings.shutdown_grace_seconds)
        self.launcher.cleanup()
        if self.tap is not None:
            await self.tap.close()

    def _upstream_headers(self, label: str, status: int, headers: Mapping[str, str]) -> None:
        """The tap saw an upstream response of ``label``'s login: its windows, if it has any."""
        info = rate_limit_from_headers(headers)
        if info is not None and label in self.book.states:
            self.book.read(label, info)
        throttle = plain_throttle(status, headers)
        if throttle is not None and label in self.book.states:
            self.book.throttled(label, throttle)

    # -- what the APIs call --------------------------------------------------------------
    def status(self) -> BridgeStatus:
        """For /health: "degraded" when a feature is switched off or new CLI processes keep
        dying (``degraded`` says why), each feature's state."""
        pool = self.pool.snapshot()
        # Without workers turns are still served, on the slower path ("conversations" says why).
        switched_off = [name for name in self.features.failed() if name != "workers"]
        reasons = [f"feature switched off: {name}" for name in switched_off] + pool.degraded
        # "limited" while no account takes a turn (used-up windows, until a reset; failing
        # logins); once a reset has passed, ok again, and the windows say "reset_passed".
        limited = not any(self.book.allows(name) for name in self.accounts.names)
        return BridgeStatus(
            status="degraded" if reasons else "limited" if limited else "ok",
            degraded=reasons,
            cli_path=self.cli_path,
            cli_version=self.cli_version,
            features=self.features.snapshot(),
            pool=pool,
            subscription=self.windows.view(),
            accounts=self.book.snapshot(),
            failovers=self.book.failovers,
            upstream_tap=self.tap.snapshot() if self.tap is not None else None,
            conversations=self.path(),
        )

    def resolve_model(self, requested: str | None) -> str:
        return resolve_model(
            requested, self.settings.default_model, self.settings.legacy_models, self.settings.model_alias_map()
        )

    def check(self, request: TurnRequest) -> None:
        """What no CLI turn could answer: raises InvalidRequest before any process is used."""
        check_request(request, self.features)

    def plan(self, request: TurnRequest) -> TurnPlan:
        """The turn's plan (``engine.plan``): its caller, profile, conversation and holder."""
        caller = request.caller or self.anonymous
        profile = self.profile(request)
        messages = self.thinking.restore(request.messages, caller.tenant)
        history: tuple[Message, ...] = tuple(messages[:-1])
        prompt: Message | None = messages[-1]
        if self.workers:
            # Every turn on any warm worker: its own history is the marker turns it served.
            history, prompt = (), None
        elif ends_with_tool_results(messages):
            history, prompt = tuple(messages), None  # the CLI continues by itself
        holder = None if self.workers else self.pool.holder(profile, history, caller.tenant)
        return TurnPlan(request, caller, profile, messages, history, prompt, holder)

    def profile(self, request: TurnRequest) -> Profile:
        """The launch profile of the request's process. On workers, what the tap writes into
        each request (system prompt, tools, tool choice) is no launch setting."""
        profile = profile_for(request, self.resolve_model(request.model), self.settings.default_effort or None)
        if self.workers:
            profile = dataclasses.replace(profile, system=None, tools_json=None, tool_choice_json=None)
        return profile

    def path(self) -> dict[str, str]:
        """Which way turns are served, and why (for /health and doctor)."""
        if self.workers:
            return {"path": "workers", "detail": "any warm process serves any turn: the tap writes the conversation"}
        if self.tap is None:
            why = "UPSTREAM_TAP=off"
        else:
            why = self.features.refusal("workers") or (
                f"Claude Code {self.cli_version} is older than {dotted(FEATURE_MINIMUMS['workers'])}, the first "
                "version whose requests the tap was checked against"
            )
        return {"path": "transcripts", "detail": f"held processes and transcript rebuilds ({why})"}

    async def stream(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """Run the request's turn; yields TextDelta/ToolCall events and one TurnDone.

        Closing the generator early (the client left) ends the lease with the turn still
        open: the process is not reusable, and the pool stops it (which interrupts the CLI,
        and the CLI drops the upstream request).

        Raises AccountsRefused (429, Retry-After at the earliest reset) when none of the
        caller's accounts allows a turn, before any process is used.

        A turn whose process died before anything reached the caller (killed, crashed, its
        pipes closed) is run once more on a freshly launched process, transparently: the
        caller gets its answer. A death after the first event stays an error (in-band when
        streaming); so does a second death, and a refusal by the pool (a CLI that keeps
        failing to start is a 503 from the pool).
        """
        self.check(request)
        plan = self.plan(request)
        caller, base = plan.caller, plan.profile
        tried: list[str] = []

        def untried() -> list[str]:
            """The caller's accounts that allow this model now and have not been tried, in order."""
            return [name for name in self.book.order(caller, model=base.model) if name not in tried]

        while True:
            order = [name for name in self.book.order(caller, plan.holder, base.model) if name not in tried]
            if not order:
                raise self.book.refusal(caller, base.model)
            account = order[0]
            tried.append(account)
            profile = dataclasses.replace(base, account=account)
            note(account=account)
            produced = False
            began = time.time()
            try:
                async with contextlib.aclosing(self.runner.on_account(plan, profile)) as events:
                    async for event in events:
                        produced = True
                        yield event
            except BridgeError as error:
                if isinstance(error, CreditsRequired) and not produced:
                    # The model, not the account, is refused: the account stays unmarked (it
                    # serves other models) and the next account of the key is tried.
                    successor = next(iter(untried()), None)
                    if successor is None:
                        raise
                    log.warning(
                        "account %s: the upstream asks usage credits for this model; trying %s", account, successor
                    )
                    self.book.failed_over(account)
                    note(failover_from=account)
                    continue
                if isinstance(error, ExtraUsageRefused) and not produced:
                    note(extra_usage=account)
                    self.book.refused_as_extra_usage(account)
                    # Never a silent move to another subscription: only an API-key account the
                    # operator listed for this key may take the turn.
                    later = untried()
                    api_keys = {a.name for a in self.accounts.accounts if a.kind == "api_key"}
                    keyed = [n for n in later if n in api_keys]
                    if not keyed:
                        raise
                    log.warning("account %s: the upstream refused a turn as extra usage; trying %s", account, keyed[0])
                    tried.extend(n for n in later if n != keyed[0])
                    continue
                throttle = self.book.throttle_since(account, began) if is_plain_429(error) else None
                if throttle is not None:
                    # A short throttle, not a used-up window: retry after the upstream's own
                    # time, and the account is not marked refused past it (accounts.book).
                    error.retry_after = max(1, math.ceil(throttle))
                if produced or not is_refusal(error):
                    raise
                self.book.refused(account, error)
                if len(caller.accounts) == 1:
                    raise  # nowhere to fail over to: the account's own words say most
                successor = next(iter(untried()), None)
                log.warning(
                    "account %s refused a turn (%s); %s",
                    account,
                    error.code or error.kind,
                    f"failing over to {successor}" if successor else "no other account allows a turn",
                )
                if successor is not None:
                    self.book.failed_over(account)
                    note(failover_from=account)
                continue
            self.book.served(account)
            charge = self.book.charge(caller, account)  # the key's part of the 5-hour window
            if charge is not None:
                note(window_used=charge.used, window_reset=charge.resets_at)
            return


def plain_throttle(status: int, headers: Mapping[str, str]) -> float | None:
    """The retry-after (seconds) of a 429 that is a plain throttle: no ``rejected`` unified
    status (a used-up window has its own reset). None otherwise, or for an HTTP-date value."""
    if status != 429 or headers.get("anthropic-ratelimit-unified-status") == "rejected":
        return None
    try:
        seconds = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None


def is_plain_429(error: BridgeError) -> bool:
    return isinstance(error, UpstreamError) and error.status == 429 and error.limit is None


def pool_limits(settings: Settings) -> PoolLimits:
    """The pool's bounds from the settings (PoolLimits' defaults are the settings' defaults)."""
    return PoolLimits(
        max_processes=settings.max_processes,
        max_memory_bytes=settings.max_memory_mb * 1024 * 1024,
        spare_profiles=settings.spare_profiles,
        max_spares_per_profile=settings.max_spares_per_profile,
        spare_demand_window_seconds=settings.spare_demand_window_seconds,
        max_conversations=settings.max_conversations,
        conversation_idle_seconds=settings.conversation_idle_seconds,
        spare_idle_seconds=settings.spare_idle_seconds,
        queue_size=settings.queue_size,
        queue_timeout_seconds=settings.queue_timeout_seconds,
        backoff_max_seconds=settings.cli_backoff_max_seconds,
    )
