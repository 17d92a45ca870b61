"""The upstream tap: the bridge on the CLI's upstream side.

Every CLI process gets ``ANTHROPIC_BASE_URL`` = a loopback listener of the bridge
(``server.Tap``), which forwards each request to the real upstream unchanged but for what
``rewrite`` removes (the CLI's environment note), streams the answer back as it arrives, and
hands each response's headers to a callback (the subscription windows, ``core.limits``).
``UPSTREAM_TAP=off`` gives the CLI the upstream's address directly instead.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..settings import Settings
from .server import HeadersCallback, Tap, TapSettings, origin, upstream_base_url
from .upstream import UpstreamClient

__all__ = ["Tap", "TapSettings", "check_environment", "origin", "tap_for", "upstream_base_url"]

RECORDED_REQUESTS = 20  # what the model saw, for the dashboard (LOG_CONTENT=on only)


def tap_for(settings: Settings, env: Mapping[str, str], on_headers: HeadersCallback) -> Tap | None:
    """The bridge's tap for these settings (None with UPSTREAM_TAP=off)."""
    if not settings.upstream_tap:
        return None
    tap_settings = TapSettings(
        upstream=upstream_base_url(env),
        keep_environment_note=settings.keep_cli_environment_note,
        record=RECORDED_REQUESTS if settings.log_content else 0,
    )
    return Tap(tap_settings, env, on_headers)


def check_environment(settings: Settings, env: Mapping[str, str]) -> None:
    """Raise ValueError (saying how to fix it) when the tap cannot reach the upstream the way
    this environment asks: an upstream URL that is not http(s), a proxy scheme it does not
    speak. Nothing is connected."""
    if settings.upstream_tap:
        UpstreamClient(upstream_base_url(env), env, None)
