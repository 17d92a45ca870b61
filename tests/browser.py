"""Headless Chromium (Debian's package) for the dashboard test: the DOM after the page's
scripts ran, and a screenshot. Skips with a clear reason when no Chromium is installed."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-dev-shm-usage",
    # Virtual time runs the page until its fetches settle (it polls, so a budget ends it).
    "--virtual-time-budget=15000",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium: install Debian's `chromium` package (.ci/run does so with apt)")


def dump_dom(url: str, timeout: float = 120) -> str:
    result = subprocess.run([chromium(), *FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot(url: str, path: Path, timeout: float = 120) -> None:
    subprocess.run(
        [chromium(), *FLAGS, "--hide-scrollbars", "--window-size=1400,1400", f"--screenshot={path}", url],
        capture_output=True,
        timeout=timeout,
    )


class _Texts(HTMLParser):
    """The text inside each element with an id, and the rows of each table body."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.attrs_by_id: dict[str, dict[str, str]] = {}
        self._open: list[tuple[str, str | None]] = []
        self.rows: dict[str, list[list[str]]] = {}
        self._table: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        element_id = attributes.get("id")
        if element_id:
            self.by_id.setdefault(element_id, "")
            self.attrs_by_id[element_id] = attributes
        if tag == "table":
            self._table.append(element_id or "")
        if tag == "tr" and self._table:
            self.rows.setdefault(self._table[-1], []).append([])
        if tag == "td" and self._table:
            self.rows[self._table[-1]][-1].append("")
        if tag not in ("meta", "link", "br", "img", "input", "hr"):  # void elements have no end tag
            self._open.append((tag, element_id))

    def handle_endtag(self, tag):
        if tag == "table" and self._table:
            self._table.pop()
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        for _, element_id in self._open:
            if element_id:
                self.by_id[element_id] += data
        if self._table and self._open and self._open[-1][0] == "td" and self.rows.get(self._table[-1]):
            self.rows[self._table[-1]][-1][-1] += data


def parse(dom: str) -> _Texts:
    texts = _Texts()
    texts.feed(dom)
    return texts
