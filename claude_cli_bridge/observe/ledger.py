"""The usage ledger: one JSON line per model request in ``DATA_DIR/usage-YYYY-MM-DD.jsonl``
(UTC days), and one per failed request in ``errors-YYYY-MM-DD.jsonl``.

A usage line: time, API, route, model (and the upstream's model id), key label (never the
key), stream, how the CLI process was found, wait, time to first token, duration, tokens in /
out / cache read / cache write as the upstream reported them, stop reason, status and error.
Only a turn that was served (it answered, or failed after its first output) is usage: a
request refused before that (an unknown model, a bad tool history, a busy pool) spent no
model and goes to the errors file only, counted per route (``errors_by_route``).
Files older than ``USAGE_RETENTION_DAYS`` are deleted (at start and when the day changes).
``summarise`` gives requests and tokens per day and model, for ``claude-cli-bridge usage`` and
the dashboard.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from ..core.record import RequestRecord

log = logging.getLogger(__name__)

FILE = re.compile(r"^(usage|errors)-(\d{4}-\d{2}-\d{2})\.jsonl$")
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
USAGE_FIELDS = (
    "time", "api", "route", "model", "upstream_model", "key_label", "account", "failover_from", "stream", "how",
    "wait_s", "first_token_s", "duration_s", *TOKEN_FIELDS, "stop_reason", "status", "in_band_error", "client_gone",
    "error", "window_used", "window_reset",
)  # fmt: skip
ERROR_FIELDS = (
    "time", "api", "method", "path", "route", "model", "key_label", "account", "status", "in_band_error", "error",
    "extra_usage",
)  # fmt: skip
ErrorTotals = dict[str, dict[tuple[str, str], dict[int, int]]]  # day -> (api, route) -> status -> count


def served(record: RequestRecord) -> bool:
    """Whether a model answered any of the request (usage), rather than it being refused."""
    return record.turn and (record.status < 400 or record.usage is not None or record.first_token_s is not None)


def _today(clock: Callable[[], float] = time.time) -> str:
    return datetime.fromtimestamp(clock(), UTC).strftime("%Y-%m-%d")


class Ledger:
    def __init__(
        self, data_dir: Path, retention_days: int, clock: Callable[[], float] = time.time, summary_days: int = 31
    ):
        self.dir = data_dir
        self.retention_days = retention_days
        self._clock = clock
        self._day = ""
        self._writable = True
        self._handles: dict[str, TextIO] = {}
        # by model, key and account: day -> group -> totals, for the dashboard (loaded once,
        # then kept up to date)
        self._summaries: dict[str, dict[str, dict[str, dict[str, int]]]] = {by: {} for by in GROUPS}
        self._summary_days = summary_days
        # day -> (api, route) -> status -> count, for the dashboard's errors by route
        self._errors: ErrorTotals = {}
        self._rotate()
        for row in read_usage(self.dir, summary_days, clock):
            for by, totals in self._summaries.items():
                _add(totals, row, by=by)
        for row in read_rows(self.dir, "errors", summary_days, clock):
            _add_error(self._errors, row)

    def append(self, record: RequestRecord) -> None:
        """Write the record's lines (a model request to usage, a failure to errors)."""
        if not (record.turn or record.failed):
            return
        self._rotate()
        data = record.as_dict()
        if served(record):
            row = {name: data.get(name) for name in USAGE_FIELDS}
            self._write(f"usage-{record.day}.jsonl", row)
            for by, totals in self._summaries.items():
                _add(totals, row, record.day, by)
        if record.failed:
            error_row = {name: data.get(name) for name in ERROR_FIELDS}
            self._write(f"errors-{record.day}.jsonl", error_row)
            _add_error(self._errors, error_row, record.day)

    def summary(self, days: int = 14, by: str = "model") -> list[dict[str, Any]]:
        """Usage per day and model (or key, account) over the last ``days``."""
        first = (datetime.fromtimestamp(self._clock(), UTC).date() - timedelta(days=days - 1)).isoformat()
        return _rows(self._summaries[by], first, by)

    def errors_by_route(self, days: int = 14) -> list[dict[str, Any]]:
        """Failed requests per day, API and route, with their statuses ("404": 2, ...)."""
        first = (datetime.fromtimestamp(self._clock(), UTC).date() - timedelta(days=days - 1)).isoformat()
        return [
            {"day": day, "api": api, "route": route, "errors": sum(statuses.values()),
             "statuses": {str(status): n for status, n in sorted(statuses.items())}}
            for day in sorted(self._errors) if day >= first
            for (api, route), statuses in sorted(self._errors[day].items())
        ]  # fmt: skip

    def _write(self, name: str, row: dict[str, Any]) -> None:
        if not self._writable:
            return
        try:
            handle = self._handles.get(name)
            if handle is None:
                self.dir.mkdir(parents=True, exist_ok=True)
                handle = self._handles[name] = open(self.dir / name, "a", encoding="utf-8")  # noqa: SIM115
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()  # whole lines on disk: `usage` and other readers see them at once
        except OSError as exc:  # the server keeps serving; say it once
            self._writable = False
            log.error("usage ledger disabled: cannot write %s: %s (set DATA_DIR)", self.dir / name, exc)

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def _rotate(self) -> None:
        today = _today(self._clock)
        if today == self._day:
            return
        self._day = today
        self.close()  # open files are per day (kept open: one write per request, no reopening)
        prune(self.dir, self.retention_days, self._clock)


def prune(data_dir: Path, retention_days: int, clock: Callable[[], float] = time.time) -> list[Path]:
    """Delete usage and error files older than ``retention_days`` (0 keeps everything)."""
    if retention_days <= 0 or not data_dir.is_dir():
        return []
    oldest = datetime.fromtimestamp(clock(), UTC).date() - timedelta(days=retention_days - 1)
    removed = []
    for path in data_dir.iterdir():
        match = FILE.match(path.name)
        if match and date.fromisoformat(match[2]) < oldest:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def read_usage(data_dir: Path, days: int, clock: Callable[[], float] = time.time) -> list[dict[str, Any]]:
    """Every usage row of the last ``days`` days (today included), oldest first."""
    return read_rows(data_dir, "usage", days, clock)


def read_rows(data_dir: Path, kind: str, days: int, clock: Callable[[], float] = time.time) -> list[dict[str, Any]]:
    """Every row of the ``kind`` files (usage, errors) of the last ``days`` days, oldest first."""
    if not data_dir.is_dir():
        return []
    first = datetime.fromtimestamp(clock(), UTC).date() - timedelta(days=days - 1)
    rows = []
    for path in sorted(data_dir.glob(f"{kind}-*.jsonl")):
        match = FILE.match(path.name)
        if not match or date.fromisoformat(match[2]) < first:
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if isinstance(row, dict):
                row["_day"] = match[2]
                rows.append(row)
    return rows


#: What ``usage --by`` groups on: the ledger field of each choice.
GROUPS = {"model": "model", "key": "key_label", "account": "account"}


def summarise(rows: list[dict[str, Any]], by: str = "model") -> list[dict[str, Any]]:
    """Totals per day and ``by`` (model, key or account); rows carry the group as ``by``."""
    totals: dict[str, dict[str, dict[str, int]]] = {}
    for row in rows:
        _add(totals, row, by=by)
    return _rows(totals, "", by)


def _add(
    totals: dict[str, dict[str, dict[str, int]]], row: dict[str, Any], day: str | None = None, by: str = "model"
) -> None:
    day = day or row.get("_day") or str(row.get("time", ""))[:10]
    entry = totals.setdefault(day, {}).setdefault(
        str(row.get(GROUPS[by]) or ("?" if by == "model" else "(none)")),
        defaultdict(int, {"requests": 0, "errors": 0, **dict.fromkeys(TOKEN_FIELDS, 0)}),
    )
    entry["requests"] += 1
    status = row.get("status") or 0
    if (isinstance(status, int) and status >= 400) or row.get("in_band_error"):
        entry["errors"] += 1
    for name in TOKEN_FIELDS:
        value = row.get(name)
        entry[name] += value if isinstance(value, int) else 0


def _add_error(
    totals: dict[str, dict[tuple[str, str], dict[int, int]]], row: dict[str, Any], day: str | None = None
) -> None:
    day = day or row.get("_day") or str(row.get("time", ""))[:10]
    route = str(row.get("route") or row.get("path") or "?")
    statuses = totals.setdefault(day, {}).setdefault((str(row.get("api") or "?"), route), defaultdict(int))
    status = row.get("status")
    statuses[status if isinstance(status, int) else 0] += 1


def _rows(totals: dict[str, dict[str, dict[str, int]]], first_day: str, by: str = "model") -> list[dict[str, Any]]:
    return [
        {"day": day, by: model, **dict(values)}
        for day in sorted(totals)
        if day >= first_day
        for model, values in sorted(totals[day].items())
    ]


def print_summary(
    data_dir: Path, days: int, as_json: bool, out: Callable[[str], None] = print, by: str = "model"
) -> int:
    """``claude-cli-bridge usage``: requests and tokens per day and model (or key, account)."""
    rows = summarise(read_usage(data_dir, days), by)
    if as_json:
        out(json.dumps(rows, indent=2))
        return 0
    if not rows:
        out(f"No usage recorded in the last {days} days (ledger: {data_dir}).")
        return 0
    header = (
        f"{'day':<10}  {by:<22} {'requests':>8} {'errors':>6} {'input':>10} {'output':>10} "
        f"{'cache read':>11} {'cache write':>11}"
    )
    out(header)
    out("-" * len(header))
    total: dict[str, int] = defaultdict(int)
    for row in rows:
        out(
            f"{row['day']:<10}  {row[by]:<22} {row['requests']:>8} {row['errors']:>6} {row['input_tokens']:>10,} "
            f"{row['output_tokens']:>10,} {row['cache_read_tokens']:>11,} {row['cache_write_tokens']:>11,}"
        )
        for name in ("requests", "errors", *TOKEN_FIELDS):
            total[name] += row[name]
    out("-" * len(header))
    out(
        f"{'total':<10}  {'':<22} {total['requests']:>8} {total['errors']:>6} {total['input_tokens']:>10,} "
        f"{total['output_tokens']:>10,} {total['cache_read_tokens']:>11,} {total['cache_write_tokens']:>11,}"
    )
    out(f"(ledger: {data_dir}; tokens as the upstream reported them)")
    return 0
