"""Starting the real server for end-to-end tests: ``python -m claude_cli_bridge`` as a
subprocess on free loopback ports, with the real CLI pointed at the fake upstream."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent


def run_module(*args: str, base_env: dict[str, str] | None = None, timeout: float = 120, **env: str):
    """``python -m claude_cli_bridge ARGS`` from the repository root with stdin closed; its
    environment is ``base_env`` (default: this process's) with ``env`` over it."""
    return subprocess.run(
        [sys.executable, "-m", "claude_cli_bridge", *args],
        cwd=str(ROOT),
        env={**(os.environ if base_env is None else base_env), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def find_test_cli() -> str:
    """The CLI the tests drive: CLAUDE_CLI_PATH, the one scripts/test installs, or PATH."""
    configured = os.environ.get("CLAUDE_CLI_PATH")
    if configured:
        return configured
    local = ROOT / ".cache" / "cli" / "node_modules" / ".bin" / "claude"
    if local.exists():
        return str(local)
    found = shutil.which("claude")
    if not found:
        raise RuntimeError("no claude CLI for the tests: run scripts/test, which installs it")
    return found


# What the CLI itself chooses when the bridge passes nothing, by CLI version, as observed with
# the fake upstream (scripts/cli-floor and scripts/cli-version). The bridge passes these on
# untouched; tests that check "the CLI's default" compare with the CLI in use.
OBSERVED_DEFAULT_EFFORT = {"2.1.277": "high", "2.1.332": "medium"}


def cli_default_effort() -> str | None:
    """The effort the test CLI asks for by default; None for a version not observed."""
    from claude_cli_bridge.cli.locate import cli_version

    version = (cli_version(find_test_cli()) or "").split(" ")[0]
    return OBSERVED_DEFAULT_EFFORT.get(version)


# Whether the CLI sends its "# Environment" note upstream at all (2.1.277 sends none).
OBSERVED_ENVIRONMENT_NOTE = {"2.1.277": False, "2.1.332": True}


def cli_sends_environment_note() -> bool:
    """Whether the test CLI sends an environment note (True for a version not observed)."""
    from claude_cli_bridge.cli.locate import cli_version

    version = (cli_version(find_test_cli()) or "").split(" ")[0]
    return OBSERVED_ENVIRONMENT_NOTE.get(version, True)


class BridgeServer:
    """One running server. ``env`` entries are added to the test environment."""

    def __init__(self, upstream_url: str, **env: str | None):
        self.port = free_port()
        self.ollama_port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="bridge-test-"))
        self.env = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "OLLAMA_PORT": str(self.ollama_port),
            "CLAUDE_CLI_PATH": find_test_cli(),
            "ANTHROPIC_BASE_URL": upstream_url,
            "ANTHROPIC_API_KEY": "sk-ant-test-key",
            "CLAUDE_CONFIG_DIR": str(self.home / "claude-config"),
            "STATE_DIR": str(self.home / "state"),
            "DATA_DIR": str(self.home / "data"),  # its own usage ledger, never the user's
            "LOG_LEVEL": "info",
            # The probe has its own tests; skipping it keeps each test server's start cheap.
            "PROBE_FEATURES": "false",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.update({key: str(value) for key, value in env.items() if value is not None})
        for key in [key for key, value in env.items() if value is None]:
            self.env.pop(key, None)  # None removes a variable (an OAuth login without ANTHROPIC_API_KEY)
        self.log_path = self.home / "server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def data_dir(self) -> Path:
        return Path(self.env["DATA_DIR"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ollama_url(self) -> str:
        return f"http://127.0.0.1:{self.ollama_port}"

    def start(self, wait: bool = True) -> BridgeServer:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "claude_cli_bridge"],
            cwd=str(ROOT),
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def health(self) -> dict:
        """The whole /health (with the server's BRIDGE_API_KEY when it has one)."""
        key = self.env.get("BRIDGE_API_KEY", "").split(",")[0].strip()
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.get(f"{self.base_url}/health", headers=headers, timeout=5).json()

    def cli_pids(self) -> set[int]:
        """PIDs of the claude processes under the server right now."""
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return set()
        pids = set()
        for child in children:
            try:
                if "claude" in " ".join(child.cmdline()[:1]) or "claude" in child.name():
                    pids.add(child.pid)
            except psutil.Error:
                pass
        return pids

    def wait_idle(self, timeout: float = 10) -> dict:
        """Wait until no turn is running and no spare is starting."""
        deadline = time.monotonic() + timeout
        status = self.health()
        while time.monotonic() < deadline:
            status = self.health()
            pool = status["pool"]
            if pool["busy"] == 0 and pool["starting"] == 0:
                return status
            time.sleep(0.05)
        return status

    def remove(self) -> None:
        """Remove the server's home (log, state, data) once nothing reads it any more."""
        shutil.rmtree(self.home, ignore_errors=True)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode
