"""Subscription windows: the CLI's rate_limit_event parsed, the state kept, a refusal's 429."""

from __future__ import annotations

import pytest

from claude_cli_bridge.accounts.windows import SubscriptionWindows
from claude_cli_bridge.cli.result import upstream_error
from claude_cli_bridge.cli.wire import TurnParser, rate_limit_info
from claude_cli_bridge.core.limits import RateLimitInfo, WindowReading
from claude_cli_bridge.errors import CreditsRequired, UpstreamError

pytestmark = pytest.mark.unit

NOW = 1_800_000_000

# Lines as the real CLI (2.1.332) printed them against the fake upstream's headers.
ALLOWED = {
    "status": "allowed",
    "resetsAt": NOW + 3600,
    "rateLimitType": "five_hour",
    "isUsingOverage": False,
    "unifiedWindows": {
        "five_hour": {"utilization": 0.42, "resetsAt": NOW + 3600},
        "seven_day": {"utilization": 0.17, "resetsAt": NOW + 86400 * 3},
    },
}
REJECTED = {
    "status": "rejected",
    "resetsAt": NOW + 1800,
    "rateLimitType": "five_hour",
    "isUsingOverage": False,
    "unifiedWindows": {
        "five_hour": {"utilization": 1, "resetsAt": NOW + 1800, "status": "rejected"},
        "seven_day": {"utilization": 0.5, "resetsAt": NOW + 86400 * 3},
    },
}


@pytest.mark.parametrize(
    "raw, expected",
    [
        (
            ALLOWED,
            RateLimitInfo(
                "allowed",
                "five_hour",
                NOW + 3600,
                windows=(
                    WindowReading("five_hour", 0.42, NOW + 3600),
                    WindowReading("seven_day", 0.17, NOW + 86400 * 3),
                ),
            ),
        ),
        (  # an older CLI: no unifiedWindows, a top-level utilization
            {"status": "allowed_warning", "resetsAt": NOW + 60, "rateLimitType": "seven_day", "utilization": 0.8},
            RateLimitInfo("allowed_warning", "seven_day", NOW + 60, utilization=0.8),
        ),
        (  # wrong types are dropped, not guessed
            {"status": 3, "resetsAt": "soon", "unifiedWindows": {"five_hour": {"utilization": "half"}}},
            RateLimitInfo("unknown", windows=(WindowReading("five_hour"),)),
        ),
        (
            {"status": "allowed", "overageStatus": "rejected", "overageResetsAt": NOW + 5, "isUsingOverage": True},
            RateLimitInfo("allowed", using_overage=True, overage_status="rejected", overage_resets_at=NOW + 5),
        ),
    ],
)
def test_rate_limit_info_from_the_cli(raw, expected):
    assert rate_limit_info(raw) == expected


def test_the_parser_yields_the_reading_and_a_refusal_names_the_window():
    parser = TurnParser()
    events = parser.feed({"type": "rate_limit_event", "rate_limit_info": REJECTED})
    assert events == [rate_limit_info(REJECTED)]
    with pytest.raises(UpstreamError) as caught:
        parser.feed(
            {
                "type": "result",
                "subtype": "success",
                "is_error": True,
                "api_error_status": 429,
                "result": "You've hit your 5-hour limit",
            }
        )
    assert caught.value.status == 429
    assert "5-hour limit" in caught.value.message


@pytest.mark.parametrize("seconds_left, retry", [(1800, False), (30, True)])
def test_a_refused_window_gives_retry_after_at_its_reset(seconds_left, retry):
    info = rate_limit_info({**REJECTED, "resetsAt": NOW + seconds_left})
    error = upstream_error(429, "You've hit your 5-hour limit", rate_limit=info, now=NOW)
    assert isinstance(error, UpstreamError)
    assert (error.status, error.retry_after, error.retry, error.code) == (
        429,
        seconds_left,
        retry,
        "subscription_limit_reached",
    )
    assert "5-hour" in error.message and "resets at" in error.message


def test_a_429_without_a_rejected_window_keeps_the_plain_mapping():
    error = upstream_error(429, "rate limited", rate_limit=rate_limit_info(ALLOWED), now=NOW)
    assert error.retry_after == 30 and error.code is None


def test_a_429_with_credits_required_is_named_and_not_retried():
    error = upstream_error(429, "API Error: Request rejected (429) · needs credits", api_error_code="credits_required")
    assert isinstance(error, CreditsRequired)
    assert (error.status, error.code, error.retry, error.retry_after) == (429, "credits_required", False, None)
    assert "usage credits" in error.message and "needs credits" in error.message
    assert not isinstance(upstream_error(400, "bad", api_error_code="credits_required"), CreditsRequired)


def test_the_state_keeps_the_latest_reading_and_persists_it(tmp_path):
    clock = [float(NOW)]
    windows = SubscriptionWindows(tmp_path, clock=lambda: clock[0])
    assert windows.view().windows == {} and windows.describe() == []
    windows.update(rate_limit_info(ALLOWED))
    windows.update(rate_limit_info(REJECTED))
    snapshot = windows.view()
    assert snapshot.status == "rejected" and snapshot.limiting == "five_hour"
    five = snapshot.windows["five_hour"]
    assert (five.percent, five.status, five.resets_in_seconds) == (100.0, "rejected", 1800)
    assert snapshot.windows["seven_day"].percent == 50.0

    clock[0] += 120
    reloaded = SubscriptionWindows(tmp_path, clock=lambda: clock[0])
    assert reloaded.view().windows["five_hour"].utilization == 1
    assert reloaded.view().age_seconds == 120
    assert any(line.startswith("5-hour: 100% used (rejected), resets") for line in reloaded.describe())

    clock[0] += 3600  # past the reset: the last reading stays, marked, and nothing is refused
    assert reloaded.view().windows["five_hour"].reset_passed is True
    assert "passed; no newer reading" in reloaded.describe()[0]


def test_an_unreadable_state_file_is_ignored(tmp_path):
    (tmp_path / "windows.json").write_text("{not json")
    assert SubscriptionWindows(tmp_path).view().windows == {}


def test_a_rejection_whose_reset_passed_says_so_in_the_overall_state_and_the_window():
    clock = [NOW]
    windows = SubscriptionWindows(None, clock=lambda: clock[0])
    windows.update(
        RateLimitInfo(
            "rejected", "five_hour", NOW + 1800, windows=(WindowReading("five_hour", 1.0, NOW + 1800, "rejected"),)
        )
    )
    snapshot = windows.view()
    assert snapshot.state == "rejected" and snapshot.windows["five_hour"].state == "rejected"
    clock[0] = NOW + 1801  # the 5-hour reset has passed; no newer reading
    snapshot = windows.view()
    assert snapshot.status == "rejected"  # what was read, kept
    assert snapshot.state == "reset_passed" and snapshot.windows["five_hour"].state == "reset_passed"
    assert windows.rejection() is None


def test_the_claims_that_limit_one_model_family_as_the_cli_scopes_them():
    """CLI 2.1.332 (docs/cli.md): five_hour, seven_day and overage limit every model; the weekly
    Opus and Sonnet windows and the overage-included models' window (7d_oi, Fable) one family."""
    from claude_cli_bridge.core.limits import claim_family, family_claim, limits_model
    from claude_cli_bridge.tap.headers import rate_limit_from_headers

    assert [claim_family(c) for c in ("five_hour", "seven_day", "overage", "seven_day_oauth_apps", None)] == [None] * 5
    assert claim_family("seven_day_opus") == "opus" and claim_family("seven_day_overage_included") == "fable"
    assert family_claim("fable") == "seven_day_overage_included" and family_claim("opus") == "seven_day_opus"
    assert limits_model("seven_day_overage_included", "claude-fable-5") and not limits_model(
        "seven_day_overage_included", "sonnet"
    )
    info = rate_limit_from_headers({
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-representative-claim": "seven_day_overage_included",
        "anthropic-ratelimit-unified-7d_oi-utilization": "1.0",
        "anthropic-ratelimit-unified-7d_oi-reset": "1800000000",
    })  # fmt: skip
    assert info is not None and info.window == "seven_day_overage_included"
    assert [w.name for w in info.windows] == ["seven_day_overage_included"]
