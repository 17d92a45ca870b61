"""The request log: one line per API request, readable text or JSON (``LOG_FORMAT``).

Text: ``openai POST /v1/chat/completions model=sonnet stream=yes process=spare wait=0.002s
first=0.412s total=1.203s tokens in=11 out=4 cache-read=0 cache-write=0 status=200``.
JSON: one object per line with the record's fields (see ``core.record``). Never prompt text:
the record holds none (``LOG_CONTENT`` logs content separately, from the engine). Nothing else a
caller sent either: the path is the route's template (``/v1/responses/{response_id}``, not the
id the caller sent), a path no route serves is ``(no route)``, and an error is its code and
kind, never its message.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ..core.record import RequestRecord

log = logging.getLogger("claude_cli_bridge.requests")


def logged_path(record: RequestRecord) -> str:
    """The path as logged: the route's template, never ids or names from the caller's URL."""
    return record.route or "(no route)"


def text_line(record: RequestRecord) -> str:
    parts = [record.api, record.method, logged_path(record)]
    if record.model:
        parts.append(f"model={record.model}")
    if record.turn:
        parts.append("stream=" + {True: "yes", False: "no", None: "?"}[record.stream])
        if record.how:
            parts.append(f"process={record.how.replace(' ', '+')}")
        if record.wait_s is not None:
            parts.append(f"wait={record.wait_s:.3f}s")
        if record.first_token_s is not None:
            parts.append(f"first={record.first_token_s:.3f}s")
    parts.append(f"total={record.duration_s or 0:.3f}s")
    if record.usage is not None:
        usage = record.usage
        parts.append(
            f"tokens in={usage.input_tokens} out={usage.output_tokens} "
            f"cache-read={usage.cache_read_input_tokens} cache-write={usage.cache_creation_input_tokens}"
        )
    parts.append(f"status={record.status}" + (" (in-band error)" if record.in_band_error else ""))
    if record.client_gone:
        parts.append("client-gone")
    if record.key_label:
        parts.append(f"key={record.key_label}")
    if record.account:
        parts.append(f"account={record.account}")
    if record.failover_from:
        parts.append(f"failover_from={record.failover_from}")
    if record.extra_usage:
        parts.append(f"extra_usage={record.extra_usage}")
    if record.error:
        parts.append(f"error={record.error!r}")
    return " ".join(parts)


def emit(record: RequestRecord) -> None:
    """Log the record at INFO (WARNING for server-side failures)."""
    level = logging.WARNING if record.status >= 500 else logging.INFO
    if log.isEnabledFor(level):
        # The formatter asks for the record's fields only when it writes JSON.
        log.log(level, "%s", text_line(record), extra={"request": record})


class JsonFormatter(logging.Formatter):
    """LOG_FORMAT=json: every log line one JSON object; a request line carries its record."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        request = getattr(record, "request", None)
        if isinstance(request, RequestRecord):
            request = {**request.as_dict(), "path": logged_path(request)}
        if isinstance(request, dict):
            data.update(event="request", **request)
        else:
            data["message"] = record.getMessage()
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: str) -> None:
    """The process's logging: text lines on stderr, or JSON lines (uvicorn's loggers too)."""
    import sys

    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
