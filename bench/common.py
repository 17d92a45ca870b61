"""Helpers for the pool benchmark (bench/bench_pool.py): the fake upstream in its own process,
streaming clients, statistics, pool settling, memory, and the leftover-process check.

The fake Anthropic API (tests/fake_upstream.py) runs in a child process, not a thread of the
benchmark, so it does not share a GIL with the clients that take the timings. Because a child
cannot be scripted with ``enqueue``, every prompt carries a marker that says which reply to
stream: ``[bench chunks=20 delay_ms=20]``. Requests without a marker get the default reply.

    python bench/common.py fake     # runs the scripted fake; prints its base URL; stops on stdin EOF
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import contextlib
import shutil
import uuid

import httpx
import psutil

from claude_cli_bridge.cli.launch import Launcher
from claude_cli_bridge.cli.profile import Profile
from claude_cli_bridge.cli.wire import initialize_line, user_line
from claude_cli_bridge.core.messages import Message, TextBlock

CHUNK = "tok "
MARKER = re.compile(r"\[bench chunks=(\d+) delay_ms=(\d+(?:\.\d+)?)\]")
TAG_VAR = "BENCH_POOL_TAG"  # set in the environment of every process the benchmark starts
ARRIVALS_VAR = "BENCH_FAKE_ARRIVALS"  # a file: the fake appends one line per request it receives


def marker(chunks: int, delay_ms: float = 0) -> str:
    return f"[bench chunks={chunks} delay_ms={delay_ms:g}]"


def expected_text(chunks: int) -> str:
    return CHUNK * chunks


# -- the fake upstream in a child process ------------------------------------------------
def _fake_main() -> None:
    from fake_upstream import FakeAnthropic, Reply

    fake = FakeAnthropic()

    arrivals = os.environ.get(ARRIVALS_VAR)

    def handler(body: dict[str, Any]):
        if arrivals:  # when each request arrived, on the clock every process shares (monotonic)
            with open(arrivals, "a") as log:
                log.write(json.dumps({"t": time.perf_counter(), "last": _last_user_text(body)[:120]}) + "\n")
        for message in reversed(body.get("messages") or []):
            if message.get("role") != "user":
                continue
            found = MARKER.search(json.dumps(message.get("content")))
            if found:
                return Reply(chunks=[CHUNK] * int(found.group(1)), delay=float(found.group(2)) / 1000)
            return None
        return None

    fake.handler = handler
    fake.start()
    print(fake.base_url, flush=True)
    try:
        sys.stdin.read()  # until the parent closes the pipe (or dies)
    finally:
        fake.stop()


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(b.get("text", "") for b in content or [] if isinstance(b, dict))
    return ""


def read_arrivals(path: Path) -> list[dict[str, Any]]:
    """The fake's arrival log (``ARRIVALS_VAR``): one {"t", "last"} per request, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class FakeProcess:
    """The scripted FakeAnthropic, served by ``python bench/common.py fake``."""

    def __init__(self, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "fake"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"the fake upstream did not start (said {line!r})")
        self.base_url = line

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


# -- statistics ---------------------------------------------------------------------------
def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def median(values: Iterable[float]) -> float | None:
    data = [v for v in values if v is not None]
    return statistics.median(data) if data else None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.0f}"


def times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


# -- clients --------------------------------------------------------------------------------
def _parse_sse_line(line: str, result: dict[str, Any], started: float) -> bool:
    """Feed one SSE line into ``result``; True at ``[DONE]``."""
    if not line.startswith("data:"):
        return False
    payload = line[5:].strip()
    if payload == "[DONE]":
        return True
    obj = json.loads(payload)
    if "error" in obj:
        result["error"] = obj["error"].get("message") if isinstance(obj["error"], dict) else str(obj["error"])
        return False
    for choice in obj.get("choices") or []:
        content = (choice.get("delta") or {}).get("content")
        if content:
            now = time.perf_counter()
            if result["ttft"] is None:
                result["ttft"] = now - started
                result["first_at"] = now
            result["last_at"] = now
            result["chunks"] += 1
            result["parts"].append(content)
    return False


def _new_result() -> dict[str, Any]:
    return {
        "ttft": None,
        "total": None,
        "chunks": 0,
        "parts": [],
        "error": None,
        "status": None,
        "first_at": None,
        "last_at": None,
    }


def _finish(result: dict[str, Any], started: float) -> dict[str, Any]:
    """``total`` is request to end of response; ``last`` request to the last text byte."""
    result["total"] = time.perf_counter() - started
    result["text"] = "".join(result.pop("parts"))
    if result["first_at"] is not None and result["last_at"] is not None:
        result["first_to_last"] = result["last_at"] - result["first_at"]
        result["last"] = result["last_at"] - started
    else:
        result["first_to_last"] = result["last"] = None
    return result


def chat_body(messages: list[dict[str, Any]], model: str = "sonnet") -> dict[str, Any]:
    return {"model": model, "stream": True, "messages": messages}


def _headers(key: str | None) -> dict[str, str]:
    return {"x-conversation-id": key} if key else {}


def stream_chat(
    client: httpx.Client, url: str, messages: list[dict[str, Any]], key: str | None = None
) -> dict[str, Any]:
    """One streaming chat completion; client-side TTFT (first non-empty content delta) and total.
    ``key`` is sent as X-Conversation-Id (a new history under the same key retires the old process)."""
    result = _new_result()
    started = time.perf_counter()
    try:
        with client.stream(
            "POST", f"{url}/chat/completions", json=chat_body(messages), headers=_headers(key)
        ) as response:
            result["status"] = response.status_code
            if response.status_code != 200:
                response.read()
                result["error"] = f"HTTP {response.status_code}: {response.text[:200]}"
            else:
                for line in response.iter_lines():
                    if _parse_sse_line(line, result, started):
                        break
    except httpx.HTTPError as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    return _finish(result, started)


async def astream_chat(
    client: httpx.AsyncClient, url: str, messages: list[dict[str, Any]], key: str | None = None
) -> dict[str, Any]:
    result = _new_result()
    started = time.perf_counter()
    try:
        async with client.stream(
            "POST", f"{url}/chat/completions", json=chat_body(messages), headers=_headers(key)
        ) as response:
            result["status"] = response.status_code
            if response.status_code != 200:
                await response.aread()
                result["error"] = f"HTTP {response.status_code}: {response.text[:200]}"
            else:
                async for line in response.aiter_lines():
                    if _parse_sse_line(line, result, started):
                        break
    except httpx.HTTPError as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    return _finish(result, started)


def _ollama_line(line: str, result: dict[str, Any], started: float) -> None:
    if not line.strip():
        return
    obj = json.loads(line)
    if obj.get("error"):
        result["error"] = str(obj["error"])
        return
    content = (obj.get("message") or {}).get("content")
    if content:
        now = time.perf_counter()
        if result["ttft"] is None:
            result["ttft"] = now - started
            result["first_at"] = now
        result["last_at"] = now
        result["chunks"] += 1
        result["parts"].append(content)


async def aollama_chat(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One Ollama /api/chat request (streaming NDJSON or not, as ``body`` says): TTFT (the
    first content of a streamed answer; the whole answer when not streamed) and total."""
    result = _new_result()
    started = time.perf_counter()
    try:
        async with client.stream("POST", f"{url}/api/chat", json=body) as response:
            result["status"] = response.status_code
            if response.status_code != 200:
                await response.aread()
                result["error"] = f"HTTP {response.status_code}: {response.text[:200]}"
            else:
                async for line in response.aiter_lines():
                    _ollama_line(line, result, started)
    except httpx.HTTPError as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    return _finish(result, started)


# -- processes ------------------------------------------------------------------------------
def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy since boot (/proc/stat), so a run
    can tell its own CPU from that of other processes on a shared machine."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[pid] - before[pid] for pid in after if pid in before)


def memory(pid: int) -> dict[str, float] | None:
    """RSS and USS of one process, in MB (None if it is gone)."""
    try:
        info = psutil.Process(pid).memory_full_info()
    except psutil.Error:
        return None
    return {"rss_mb": info.rss / 2**20, "uss_mb": info.uss / 2**20}


def tagged_processes(tag: str, exclude: Iterable[int] = ()) -> list[psutil.Process]:
    """Processes whose environment carries ``BENCH_POOL_TAG=tag`` (started by this run)."""
    skip = {os.getpid(), *exclude}
    found = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid in skip:
            continue
        try:
            if proc.environ().get(TAG_VAR) == tag:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=5)


# -- the CLI read directly ------------------------------------------------------------------
def direct_launcher(cli: str, server_env: dict[str, str], state_dir: Path) -> Launcher:
    """A Launcher like the server's: the server's environment (the CLI gets the same login,
    upstream and quieting variables), its working directory and retry bound, and a private
    state directory of its own (with its own empty CLI configuration, as the server's)."""
    from claude_cli_bridge.settings import Settings

    work_dir = Path(server_env.get("CLI_WORK_DIR") or Settings.model_fields["cli_work_dir"].default)
    retries = int(server_env.get("CLI_MAX_RETRIES") or Settings.model_fields["cli_max_retries"].default)
    launcher = Launcher(cli, state_dir, dict(server_env), work_dir, retries)
    launcher.prepare()
    return launcher


def user_turn(text: str) -> str:
    """The stdin line the bridge writes for a user turn (``client_composed``, cli.wire)."""
    return user_line(Message("user", (TextBlock(text),)))


class DirectCli:
    """A CLI process read without the server, launched exactly as the pool launches it:
    argv, environment and files from ``Launcher._write_files``, cwd the launcher's working
    directory. A reader thread timestamps each stdout line on arrival. ``prompt`` given: a
    one-shot ``-p PROMPT`` run (no ``--input-format``, stdin /dev/null); else a persistent
    stream-json process whose turns are started with ``turn`` (lines written as the bridge
    writes them), which gets the ``initialize`` handshake at launch as the pool's new
    processes do (cli.process), unless ``initialize`` is False."""

    def __init__(
        self,
        launcher: Launcher,
        profile: Profile,
        prompt: str | None = None,
        *,
        extra_args: Iterable[str] = (),
        extra_env: dict[str, str] | None = None,
        initialize: bool = True,
    ):
        self.private = launcher.state_dir / f"direct-{uuid.uuid4().hex[:12]}"
        argv, env = launcher._write_files(self.private, profile, ())
        self.config_dir = Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else None
        argv = [*argv, *extra_args]
        env.update(extra_env or {})
        if prompt is not None:
            at = argv.index("--input-format")
            del argv[at : at + 2]
            argv[argv.index("-p") + 1 : argv.index("-p") + 1] = [prompt]
        self.argv = argv
        self.lines: queue.Queue[tuple[float, bytes | None]] = queue.Queue()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            cwd=str(launcher.work_dir),
            env=env,
            stdin=subprocess.DEVNULL if prompt is not None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.initialized = prompt is None and initialize
        if self.initialized:
            self.write(initialize_line("bench-init"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.put((time.perf_counter(), raw))
        self.lines.put((time.perf_counter(), None))

    def read_turn(self, started: float, timeout: float = 120, trace: bool = False) -> dict[str, Any]:
        """Read lines until the turn's ``result`` (or EOF); times are from ``started``.
        ``last`` is the arrival of the last text delta (request to last byte); ``trace`` keeps
        every line's arrival time and type in ``lines``."""
        result: dict[str, Any] = {
            "ttft": None,
            "first_to_last": None,
            "last": None,
            "total": None,
            "chunks": 0,
            "error": None,
            "lines": [],
        }
        # Collect first, parse after: parsing while lines arrive would hold the GIL against the
        # reader thread that timestamps them (the floor must not be slowed by its own reading).
        arrived: list[tuple[float, bytes]] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                at, raw = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                result["error"] = "timeout"
                break
            if raw is None:
                result["error"] = "EOF before the result line"
                break
            arrived.append((at, raw))
            if b'"type":"result"' in raw:
                break
        first = last = None
        parts = []
        for at, raw in arrived:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            kind = line.get("type")
            if trace:
                event_type = (line.get("event") or {}).get("type")
                result["lines"].append((at - started, event_type if kind == "stream_event" else kind))
            if kind == "stream_event":
                event = line.get("event") or {}
                delta = event.get("delta") or {}
                if event.get("type") == "content_block_delta" and delta.get("type") == "text_delta":
                    first = at if first is None else first
                    last = at
                    result["chunks"] += 1
                    parts.append(delta.get("text", ""))
            elif kind == "result":
                if line.get("is_error"):
                    result["error"] = str(line.get("result"))[:200]
                result["total"] = at - started
        if first is not None and last is not None:
            result["ttft"] = first - started
            result["first_to_last"] = last - first
            result["last"] = last - started
        result["text"] = "".join(parts)
        return result

    def write(self, line: str) -> float:
        """Write one stdin line; returns when it was written."""
        started = time.perf_counter()
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()
        return started

    def turn(self, text: str, timeout: float = 120, trace: bool = False) -> dict[str, Any]:
        started = self.write(user_turn(text))
        result = self.read_turn(started, timeout, trace)
        result["sent_at"] = started
        return result

    def wait_exit(self, timeout: float = 30) -> float | None:
        """Seconds from start to exit of a one-shot run."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.perf_counter() - self.started

    def stop(self) -> None:
        """End the process: stdin EOF first (a clean exit), SIGKILL to its group if it lingers,
        then remove what a killed CLI leaves behind (docs/cli.md) and its private directory."""
        if self.proc.stdin:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        self._reader.join(2)
        if self.config_dir is not None:
            for leftover in (self.config_dir / "sessions").glob(f"{self.proc.pid}.*"):
                leftover.unlink(missing_ok=True)
        Path(f"/tmp/cc-socks/{self.proc.pid}.sock").unlink(missing_ok=True)
        shutil.rmtree(self.private, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["fake"]:
        _fake_main()
    else:
        print(__doc__)
        sys.exit(2)
