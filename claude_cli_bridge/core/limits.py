"""The subscription's rate-limit windows: a neutral event a turn yields.

``RateLimitInfo`` is one reading of the windows (the CLI's ``rate_limit_event`` lines, parsed
by ``cli.wire.rate_limit_info``): the overall status, the window that limits and its reset,
and each window's use. It is never shown to clients (the engine keeps the latest state, see
``accounts/windows.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .turn import TurnEvent

# The windows the CLI names, in display order, with the words people use for them.
WINDOW_LABELS = {
    "five_hour": "5-hour",
    "seven_day": "7-day",
    "seven_day_opus": "7-day Opus",
    "seven_day_sonnet": "7-day Sonnet",
    "seven_day_overage_included": "7-day Fable (overage included)",
    "overage": "overage",
}


def window_label(name: str | None) -> str:
    return WINDOW_LABELS.get(name or "", name or "subscription")


MODEL_FAMILIES = ("opus", "sonnet", "haiku", "fable")

#: The claims that limit one model family only, as the CLI 2.1.332 scopes them (docs/cli.md
#: "Rate-limit claims"): the weekly Opus and Sonnet windows, and the weekly window of the
#: "overage included" models (``7d_oi``; the CLI's default list of them is Fable's).
FAMILY_CLAIMS = {"seven_day_opus": "opus", "seven_day_sonnet": "sonnet", "seven_day_overage_included": "fable"}


def claim_family(claim: str | None) -> str | None:
    """The model family a window limits alone (``seven_day_opus`` -> ``opus``); None for a
    window that limits every model (``five_hour``, ``seven_day``, ``overage``, unknown names)."""
    if claim is None:
        return None
    if claim in FAMILY_CLAIMS:
        return FAMILY_CLAIMS[claim]
    family = claim.removeprefix("seven_day_")
    return family if claim.startswith("seven_day_") and family in MODEL_FAMILIES else None


def family_claim(family: str) -> str:
    """The claim that limits ``family`` alone (``opus`` -> ``seven_day_opus``)."""
    return next((claim for claim, named in FAMILY_CLAIMS.items() if named == family), f"seven_day_{family}")


def model_family(model: str | None) -> str | None:
    """The family of a model name or alias (``claude-opus-4-6``, ``opus``); None if unknown."""
    lowered = (model or "").lower()
    return next((family for family in MODEL_FAMILIES if family in lowered), None)


def limits_model(claim: str | None, model: str | None) -> bool:
    """Whether a refusal by ``claim`` applies to a turn of ``model`` (None: any model, as
    for the account's overall state: a family's window leaves the others serving)."""
    family = claim_family(claim)
    if family is None:
        return True
    return model is not None and model_family(model) == family


@dataclass(frozen=True)
class WindowReading:
    """One window as last reported: fraction used (0..1, may pass 1), reset (epoch seconds),
    and the window's own status when the upstream sent one."""

    name: str
    utilization: float | None = None
    resets_at: int | None = None
    status: str | None = None


@dataclass(frozen=True)
class RateLimitInfo:
    """One ``rate_limit_event``: the overall ``status`` (``rejected`` means requests are refused
    until ``resets_at``), the ``window`` that limits, and every window the line carried."""

    status: str
    window: str | None = None
    resets_at: int | None = None
    utilization: float | None = None
    using_overage: bool = False
    windows: tuple[WindowReading, ...] = ()
    overage_status: str | None = None
    overage_resets_at: int | None = None

    @property
    def rejected(self) -> bool:
        return self.status == "rejected"


# What a CLI turn yields: the neutral turn events, plus rate-limit readings the engine keeps.
CliEvent = TurnEvent | RateLimitInfo
