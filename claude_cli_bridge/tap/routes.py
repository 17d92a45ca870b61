"""What the model saw: the dashboard's page of the last upstream requests the tap forwarded.

With ``LOG_CONTENT=on`` the tap keeps, for each of its last requests (``tap.RECORDED_REQUESTS``,
at most ``TapSettings.record_max_bytes`` of bodies in all), the exact request body it sent
upstream (the model's whole context) and the upstream's response headers. Off by default;
behind the key like every dashboard route. ``/dashboard/model-context`` is a page of its own
(plain HTML, every value escaped), ``/dashboard/model-context/data`` the same as JSON.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

OFF = "Off: start the bridge with LOG_CONTENT=on (and the tap on) to keep what the model saw."


def _entries(request: Request) -> tuple[bool, list[dict[str, Any]]]:
    tap = getattr(request.app.state, "tap", None)
    if tap is None or tap.settings.record <= 0:
        return False, []
    return True, [{k: v for k, v in entry.items() if k != "size"} for entry in reversed(tap.seen)]


@router.get("/dashboard/model-context/data")
async def model_context_data(request: Request) -> dict[str, Any]:
    enabled, entries = _entries(request)
    return {"enabled": enabled, "note": None if enabled else OFF, "requests": entries}


@router.get("/dashboard/model-context")
async def model_context_page(request: Request) -> HTMLResponse:
    enabled, entries = _entries(request)
    parts = [
        "<!doctype html><meta charset='utf-8'><title>What the model saw</title>",
        "<style>body{font:14px system-ui;margin:2em}pre{white-space:pre-wrap;background:#f4f4f4;padding:1em}</style>",
        "<h1>What the model saw</h1><p><a href='/dashboard'>dashboard</a></p>",
    ]
    if not enabled:
        parts.append(f"<p>{html.escape(OFF)}</p>")
    elif not entries:
        parts.append("<p>No upstream request yet.</p>")
    for entry in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["at"]))
        try:
            body = json.dumps(json.loads(entry["request_body"]), indent=1, ensure_ascii=False)
        except ValueError:
            body = entry["request_body"]
        headers = "\n".join(f"{k}: {v}" for k, v in entry["response_headers"].items())
        parts.append(
            f"<details><summary>{html.escape(when)} · {html.escape(entry['label'])} · "
            f"{html.escape(entry['path'])} · {entry['status']}</summary>"
            f"<h3>Request body (as forwarded)</h3><pre>{html.escape(body)}</pre>"
            f"<h3>Response headers</h3><pre>{html.escape(headers)}</pre></details>"
        )
    return HTMLResponse("".join(parts), headers={"cache-control": "no-store"})
