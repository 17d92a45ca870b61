"""Two real bridges, each with its own fake upstream account, behind a real router on
loopback: LiteLLM's proxy with deploy/litellm.yaml, or nginx with deploy/nginx.conf. Used by
tests/test_routing_e2e.py and bench/bench_routing.py.

LiteLLM's proxy runs from its own virtualenv (deploy/requirements-litellm.txt explains why):
``LITELLM_PROXY_PATH``, else ``.cache/litellm-proxy/bin/litellm`` (scripts/test installs it).
nginx is Debian's (``apt-get install nginx``; .ci/run installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fake_upstream import FakeAnthropic
from harness import ROOT, BridgeServer, free_port

BRIDGE_KEY = "bridge-test-key"
MASTER_KEY = "sk-litellm-test-master"
# A subscription (OAuth) login, so the CLI reports the upstream's rate-limit windows and a
# refused account is the subscription's 429 (CLI_NOTES.md); the fake accepts any token.
BRIDGE_ENV = {
    "ANTHROPIC_API_KEY": None,
    "CLAUDE_CODE_OAUTH_TOKEN": "fake-oauth-token",
    "BRIDGE_API_KEY": BRIDGE_KEY,
    "MAX_CONVERSATIONS": "8",
    "MAX_PROCESSES": "11",
    "SPARE_PROFILES": "1",
    "MAX_SPARES_PER_PROFILE": "1",
    "OLLAMA_PORT": "0",
}


def litellm_proxy_path() -> str | None:
    configured = os.environ.get("LITELLM_PROXY_PATH")
    if configured:
        return configured if Path(configured).exists() else None
    local = ROOT / ".cache" / "litellm-proxy" / "bin" / "litellm"
    return str(local) if local.exists() else None


def nginx_path() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


@dataclass
class Bridge:
    name: str
    fake: FakeAnthropic
    server: BridgeServer

    def counters(self) -> dict[str, int]:
        health = httpx.get(f"{self.server.base_url}/health", headers={"authorization": f"Bearer {BRIDGE_KEY}"}).json()
        return health["pool"]["counters"]


@dataclass
class Router:
    url: str  # the OpenAI base URL clients use, ending in /v1
    proc: subprocess.Popen
    log_path: Path
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="router-test-")))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.home, ignore_errors=True)


def start_bridges(**env: str) -> list[Bridge]:
    bridges = []
    for name in ("a", "b"):
        fake = FakeAnthropic().start()
        bridges.append(Bridge(name, fake, BridgeServer(fake.base_url, **{**BRIDGE_ENV, **env}).start(wait=False)))
    for bridge in bridges:
        bridge.server.wait_ready(timeout=120)
    return bridges


def stop_bridges(bridges: list[Bridge]) -> None:
    for bridge in bridges:
        bridge.server.stop()
        shutil.rmtree(bridge.server.home, ignore_errors=True)
        bridge.fake.stop()


def _wait_up(proc: subprocess.Popen, url: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"router exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"router did not start:\n{log_path.read_text(errors='replace')[-4000:]}")


def start_litellm(binary: str, bridges: list[Bridge]) -> Router:
    """LiteLLM's proxy with deploy/litellm.yaml as shipped; only the addresses come from the environment."""
    home = Path(tempfile.mkdtemp(prefix="litellm-test-"))
    port = free_port()
    env = {
        **os.environ,
        "BRIDGE_A_URL": bridges[0].server.openai_url,
        "BRIDGE_B_URL": bridges[1].server.openai_url,
        "BRIDGE_API_KEY": BRIDGE_KEY,
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOG": "INFO",
        "LITELLM_TELEMETRY": "False",
        "HOME": str(home),
    }
    log_path = home / "proxy.log"
    proc = subprocess.Popen(
        [binary, "--config", str(ROOT / "deploy" / "litellm.yaml"), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=str(home),
        stdout=open(log_path, "wb"),  # noqa: SIM115 - the child holds it
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    router = Router(f"http://127.0.0.1:{port}/v1", proc, log_path, home)
    try:
        _wait_up(proc, f"http://127.0.0.1:{port}/health/liveliness", log_path, timeout=240)
    except BaseException:
        router.stop()
        raise
    return router


def nginx_conf(bridges: list[Bridge], port: int, home: Path, affinity: bool = True) -> str:
    """deploy/nginx.conf with this run's addresses, and its files under ``home`` (not /var);
    ``affinity`` False: without its hash line (nginx's plain round robin)."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    if not affinity:
        text, found = re.subn(r"\n\s*hash \$conversation consistent;[^\n]*", "", text)
        assert found == 1, "deploy/nginx.conf has no hash line"
    text = text.replace("10.0.0.1:8000", f"127.0.0.1:{bridges[0].server.port}")
    text = text.replace("10.0.0.2:8000", f"127.0.0.1:{bridges[1].server.port}")
    text = re.sub(r"listen\s+8080;", f"listen 127.0.0.1:{port};", text)
    text = text.replace("/var/run/nginx-bridges.pid", str(home / "nginx.pid"))
    text = text.replace("/var/log/nginx/", f"{home}/")
    temp = "\n".join(
        f"    {kind}_temp_path {home}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return text.replace("http {", "http {\n" + temp, 1)


def start_nginx(binary: str, bridges: list[Bridge], affinity: bool = True) -> Router:
    home = Path(tempfile.mkdtemp(prefix="nginx-test-"))
    port = free_port()
    conf = home / "nginx.conf"
    conf.write_text(nginx_conf(bridges, port, home, affinity))
    log_path = home / "error.log"
    log_path.touch()
    proc = subprocess.Popen(
        [binary, "-p", str(home), "-c", str(conf), "-g", "daemon off;"],
        stdout=open(home / "stdout.log", "wb"),  # noqa: SIM115 - the child holds it
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    router = Router(f"http://127.0.0.1:{port}/v1", proc, log_path, home)
    try:
        _wait_up(proc, f"http://127.0.0.1:{port}/health", log_path, timeout=30)
    except BaseException:
        router.stop()
        raise
    return router
