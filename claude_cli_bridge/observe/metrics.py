"""/metrics in Prometheus' text format (prometheus_client), one registry per app.

Counted per finished request: requests by API, route, model, status, account and key; time
to first token and duration histograms; tokens by kind, account and key; failovers by the
account that refused and the key; refusals by error code; the wait for a CLI process by how
it was found. Read at scrape time from the engine's status: pool gauges (processes by state,
queue length, memory), each account's subscription windows (utilization, reset, status) and
the feature states. Keys appear by name only (never a key or its hash).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..core.record import RequestRecord
from ..core.status import AccountSnapshot, BridgeStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self, status: Callable[[], BridgeStatus]):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "bridge_requests",
            "API requests by API, route, model, status, account and client key (its name).",
            ["api", "route", "model", "status", "account", "key"],
            registry=r,
        )
        self.first_token = Histogram(
            "bridge_time_to_first_token_seconds",
            "From the request's arrival to the turn's first event.",
            ["api", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "bridge_request_duration_seconds",
            "From the request's arrival to its last byte.",
            ["api", "route", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.process_wait = Histogram(
            "bridge_process_wait_seconds",
            "Wait for a CLI process (queueing plus any launch), by how it was found.",
            ["how"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "bridge_tokens",
            "Tokens as the upstream reported them, by kind, account and client key.",
            ["api", "model", "kind", "account", "key"],
            registry=r,
        )
        self.failovers = Counter(
            "bridge_failovers",
            "Turns an account refused before any output and another account answered, by the refusing account.",
            ["account", "key"],
            registry=r,
        )
        self.extra_usage = Counter(
            "bridge_extra_usage_refusals",
            "Subscription turns the upstream refused as extra usage, by account.",
            ["account"],
            registry=r,
        )
        self.refusals = Counter(
            "bridge_refusals",
            "Requests answered with an error, by API, status and error code.",
            ["api", "status", "code"],
            registry=r,
        )
        r.register(_StatusCollector(status))

    def observe(self, record: RequestRecord) -> None:
        model = record.model
        account, key = record.account, record.key_label
        self.requests.labels(record.api, record.route, model, str(record.status), account, key).inc()
        if record.failover_from:
            self.failovers.labels(record.failover_from, key).inc()
        if record.extra_usage:
            self.extra_usage.labels(record.extra_usage).inc()
        if record.duration_s is not None:
            self.duration.labels(record.api, record.route, model).observe(record.duration_s)
        if record.turn and record.first_token_s is not None and not record.failed:
            self.first_token.labels(record.api, model).observe(record.first_token_s)
        if record.wait_s is not None and record.how:
            self.process_wait.labels(record.how).observe(record.wait_s)
        if record.usage is not None:
            usage = record.usage
            for kind, value in (
                ("input", usage.input_tokens),
                ("output", usage.output_tokens),
                ("cache_read", usage.cache_read_input_tokens),
                ("cache_write", usage.cache_creation_input_tokens),
            ):
                self.tokens.labels(record.api, model, kind, account, key).inc(value)
        if record.failed:
            code = record.error.split(":", 1)[0] if record.error else "http_" + str(record.status)
            self.refusals.labels(record.api, str(record.status), code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StatusCollector(Collector):
    """Gauges read from the engine's status at scrape time."""

    def __init__(self, status: Callable[[], BridgeStatus]):
        self._status = status

    def describe(self) -> list[Metric]:
        return []  # nothing fixed: read at collection

    def collect(self) -> Iterator[Any]:
        status = self._status()
        info = InfoMetricFamily("bridge", "The bridge and the Claude CLI it drives.")
        info.add_metric([], {"version": __version__, "cli_version": str(status.cli_version or "")})
        yield info
        pool = status.pool
        processes = GaugeMetricFamily("bridge_pool_processes", "CLI processes by state.", labels=["state"])
        for state in ("spare", "held", "busy", "starting", "stopping"):
            processes.add_metric([state], getattr(pool, state))
        yield processes
        yield GaugeMetricFamily("bridge_pool_queue_length", "Requests waiting for a CLI process.", value=pool.waiting)
        yield GaugeMetricFamily(
            "bridge_pool_memory_bytes", "Resident memory of all CLI processes.", value=pool.memory_mb * 1024 * 1024
        )
        if status.features:
            ok = GaugeMetricFamily(
                "bridge_feature_ok", "1 when the CLI's start-up probe of a feature passed.", labels=["feature"]
            )
            for name, probed in status.features.items():
                ok.add_metric([name], 1 if probed.state == "ok" else 0)
            yield ok
        accounts = status.accounts
        if not accounts and status.subscription.windows:
            accounts = {"default": AccountSnapshot(login="environment", state="", subscription=status.subscription)}
        yield from _windows(accounts)


def _windows(accounts: dict[str, AccountSnapshot]) -> Iterator[Any]:
    """Each account's windows, labelled by account and window."""
    labels = ["account", "window"]
    utilization = GaugeMetricFamily(
        "bridge_subscription_window_utilization", "Fraction of the window used (0..1), last reported.", labels=labels
    )
    reset = GaugeMetricFamily(
        "bridge_subscription_window_reset_timestamp_seconds", "When the window resets (Unix time).", labels=labels
    )
    rejected = GaugeMetricFamily(
        "bridge_subscription_window_rejected", "1 while the window refuses requests, last reported.", labels=labels
    )
    age = GaugeMetricFamily(
        "bridge_subscription_reading_age_seconds", "Age of the last window reading.", labels=["account"]
    )
    available = GaugeMetricFamily(
        "bridge_account_available",
        "1 while the account takes turns (not refused, login not failing).",
        labels=["account"],
    )
    for account, state in accounts.items():
        subscription = state.subscription
        for name, window in subscription.windows.items():
            if window.utilization is not None:
                utilization.add_metric([account, name], window.utilization)
            if window.resets_at is not None:
                reset.add_metric([account, name], window.resets_at)
            refusing = window.status == "rejected" and not window.reset_passed
            rejected.add_metric([account, name], 1 if refusing else 0)
        if subscription.age_seconds is not None:
            age.add_metric([account], subscription.age_seconds)
        if state.state:  # (an account's state; none for the windows of a server without accounts)
            available.add_metric([account], 1 if state.state == "ok" else 0)
    yield from (utilization, reset, rejected, age, available)
