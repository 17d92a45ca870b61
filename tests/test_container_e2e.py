"""The container image, built and run for real with podman (docs/container.md).

The Debian base is made here from Debian's packages (``scripts/container-base``: mmdebstrap,
imported as the ``debian:SUITE-slim`` the Containerfile starts FROM), the image is built with
``--pull=never`` (no container registry is reached) and run on the host network against the
fake upstream: the CLI inside is the pinned native binary and nothing else, the server runs as
a non-root user, refuses a public bind without a key, ``doctor`` names a missing login with its
fix, an OpenAI and an Ollama chat are answered through the image's CLI, the state lands on the
volume, and SIGTERM (``podman stop -t GRACE``) drains a streaming answer and stops cleanly.

Podman on these machines needs runc, cgroupfs and explicit ulimits: the test writes its own
containers.conf, storage.conf and registries.conf under .cache/container and points podman at
them (never the machine's). podman, runc and mmdebstrap come from Debian with apt when missing
(.ci/run installs them first); without root or apt the test is skipped, saying why. The base
tarball and podman's storage stay in .cache/container, so a rerun builds from its layer cache.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from fake_upstream import Reply
from harness import free_port, wait_for

# A cold build (base and image from nothing) takes a few minutes on 2 cores; the first test
# that needs the image waits for it.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "container"
IMAGE = "localhost/claude-cli-bridge:test"
KEY = "container-test-key-" + "0123456789abcdef"
GRACE = 30  # podman stop -t: docs/container.md
MAX_IMAGE_BYTES = 1_100_000_000  # as podman counts it (decimal)
MAX_STORAGE_BYTES = 6_000_000_000  # past this, the cached layers are dropped and built again
TOOLS = {"podman": "podman", "runc": "runc", "mmdebstrap": "mmdebstrap"}  # command: Debian package
CLI_VERSION = (ROOT / "scripts" / "cli-version").read_text().strip()


def containerfile_suite() -> str:
    match = re.search(r"^ARG BASE=debian:(\w+)-slim$", (ROOT / "Containerfile").read_text(), re.MULTILINE)
    assert match, "the Containerfile starts FROM debian:SUITE-slim"
    return match.group(1)


def install_tools() -> str | None:
    """podman, runc and mmdebstrap from Debian when missing; the reason to skip, or None."""
    missing = [package for command, package in TOOLS.items() if not shutil.which(command)]
    if not missing:
        return None if os.geteuid() == 0 else "the container test runs as root (rootful podman, mmdebstrap)"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{', '.join(missing)} missing and no apt-get as root to install them (.ci/run installs them)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            return f"could not install {', '.join(missing)} with apt: {result.stderr.strip()[-300:]}"
    return None


class Podman:
    """podman with this test's own configuration (runc, cgroupfs, ulimits within the machine's
    hard limits, storage under .cache/container)."""

    def __init__(self) -> None:
        conf = CACHE / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        # Run-time state is thrown away with the machine's /tmp (a reboot); layers are kept.
        run = Path("/tmp") / "claude-cli-bridge-podman"
        (run / "tmp").mkdir(parents=True, exist_ok=True)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        nofile = 1048576 if nofile == resource.RLIM_INFINITY else min(nofile, 1048576)
        nproc = 32768 if nproc == resource.RLIM_INFINITY else min(nproc, 32768)
        (conf / "containers.conf").write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'tmp_dir = "{run / "tmp"}"\n'
        )
        (conf / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{CACHE / "storage"}"\nrunroot = "{run / "run"}"\n'
        )
        # No registry to search or pull from: every image is local.
        (conf / "registries.conf").write_text('unqualified-search-registries = []\nshort-name-mode = "disabled"\n')
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(conf / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(conf / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(conf / "registries.conf"),
        }

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
        return result

    def image_id(self, name: str) -> str | None:
        result = self("image", "inspect", "--format", "{{.Id}}", name, check=False)
        return result.stdout.strip() or None


def storage_bytes() -> int:
    result = subprocess.run(["du", "-sb", str(CACHE / "storage")], capture_output=True, text=True)
    return int(result.stdout.split()[0]) if result.returncode == 0 and result.stdout else 0


@pytest.fixture(scope="module")
def podman() -> Podman:
    reason = install_tools()
    if reason:
        pytest.skip(reason)
    return Podman()


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    """The image, built from the checkout on the locally made Debian base; build times are
    written to .cache/container/last-build.json."""
    if storage_bytes() > MAX_STORAGE_BYTES:  # layers of earlier builds pile up: start again
        podman("rmi", "--all", "--force", timeout=600, check=False)
    before = podman.image_id(IMAGE)
    started = time.monotonic()
    base = subprocess.run(
        ["bash", str(ROOT / "scripts" / "container-base"), containerfile_suite(), str(CACHE)],
        env=podman.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert base.returncode == 0, base.stdout[-3000:] + base.stderr[-3000:]
    based = time.monotonic()
    build = podman(
        "build", "--pull=never", "--format", "docker", "--jobs", "2", "-t", IMAGE, "-f", "Containerfile", str(ROOT),
        timeout=840,
    )  # fmt: skip
    built = time.monotonic()
    after = podman.image_id(IMAGE)
    if before and before != after:  # the last build's image, now untagged
        podman("rmi", before, check=False)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    timings = {"base_seconds": round(based - started, 1), "build_seconds": round(built - based, 1), "size": size}
    timings["cached_steps"] = build.stdout.count("Using cache")
    (CACHE / "last-build.json").write_text(json.dumps(timings) + "\n")
    print(f"container image: {timings}")
    return IMAGE


def test_the_image_holds_the_pinned_cli_binary_alone_and_is_small_enough(podman, image):
    version = podman("run", "--rm", "--network=none", "--entrypoint", "claude", image, "--version")
    assert version.stdout.split()[0] == CLI_VERSION, version.stdout
    # Only the native binary: no Node, no npm, no other platform's binary.
    found = podman(
        "run", "--rm", "--network=none", "--entrypoint", "sh", image, "-c",
        "command -v node nodejs npm; find / -xdev -type f -size +50M -name 'claude*' 2>/dev/null; true",
    )  # fmt: skip
    assert found.stdout.split() == ["/usr/local/bin/claude"]
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    assert size <= MAX_IMAGE_BYTES, f"{size / 1e6:.0f} MB"


def test_the_image_config_runs_a_non_root_user_with_one_volume_and_a_healthcheck(podman, image):
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "1000:1000"
    assert config["StopSignal"] == "SIGTERM"
    assert list(config["Volumes"]) == ["/var/lib/claude-cli-bridge"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["HOST"] == "0.0.0.0"
    assert env["DATA_DIR"] == "/var/lib/claude-cli-bridge/data"
    assert env["STATE_DIR"] == "/var/lib/claude-cli-bridge/state"
    assert "/ready" in " ".join(inspected["Healthcheck"]["Test"])  # kept: built with --format docker
    assert config["Entrypoint"] == ["claude-cli-bridge"] and config["Cmd"] == ["serve"]
    uid = podman("run", "--rm", "--network=none", "--entrypoint", "id", image, "-u")
    assert uid.stdout.strip() == "1000"


def test_without_a_key_it_refuses_to_listen_on_every_address(podman, image):
    result = podman("run", "--rm", "--network=none", image, check=False)
    assert result.returncode == 2
    assert "Refusing to bind 0.0.0.0 without keys" in result.stderr


def test_doctor_names_the_missing_login_and_its_fix(podman, image):
    result = podman(
        "run", "--rm", "--network=none", "-e", f"BRIDGE_API_KEY={KEY}", "-e", "PROBE_FEATURES=false", image, "doctor",
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    login = [line for line in result.stdout.splitlines() if line.startswith("[FAIL] login")]
    assert login, result.stdout
    assert "claude setup-token" in login[0] and "CLAUDE_CODE_OAUTH_TOKEN" in login[0]
    assert "[ok  ] CLI version: Claude Code " + CLI_VERSION in result.stdout


def test_doctor_accepts_the_headless_logins(podman, image, tmp_path):
    """A token in the environment; an accounts file (mounted) with a token variable and a
    config_dir account (a mounted login directory, here one never logged in)."""
    doctor = ("run", "--rm", "--network=none", "-e", f"BRIDGE_API_KEY={KEY}", "-e", "PROBE_FEATURES=false")
    result = podman(*doctor, "-e", "CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-test", image, "doctor")
    assert "[ok  ] login: from the environment (CLAUDE_CODE_OAUTH_TOKEN)" in result.stdout
    login = tmp_path / "login"
    login.mkdir()
    os.chown(login, 1000, 1000)  # the image's user keeps the CLI's credentials there
    (tmp_path / "accounts.toml").write_text(
        '[accounts.host]\nconfig_dir = "/claude-login"\n[accounts.token]\noauth_token_env = "PERSONAL_TOKEN"\n'
    )
    result = podman(
        *doctor, "-e", "PERSONAL_TOKEN=sk-ant-oat01-test", "-e", "ACCOUNTS_FILE=/etc/claude-cli-bridge/accounts.toml",
        "-v", f"{tmp_path / 'accounts.toml'}:/etc/claude-cli-bridge/accounts.toml:ro", "-v", f"{login}:/claude-login",
        image, "doctor", check=False,
    )  # fmt: skip
    assert "[ok  ] accounts file: /etc/claude-cli-bridge/accounts.toml: 2 account(s)" in result.stdout, result.stdout
    assert "[ok  ] account token: OAuth token from $PERSONAL_TOKEN (set)" in result.stdout
    assert "[FAIL] account host: the CLI is not logged in" in result.stdout
    assert result.returncode != 0


class Served:
    def __init__(self, podman: Podman, name: str, volume: str, port: int, ollama_port: int):
        self.podman = podman
        self.name = name
        self.volume = volume
        self.port = port
        self.ollama_port = ollama_port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        result = self.podman("logs", self.name, check=False)
        return result.stdout + result.stderr


@pytest.fixture(scope="module")
def served(podman, image, fake):
    """The image serving on the host network, its CLI pointed at the fake upstream."""
    name = f"claude-cli-bridge-test-{uuid.uuid4().hex[:8]}"
    volume = name
    port, ollama_port = free_port(), free_port()
    podman(
        "run", "--detach", "--name", name, "--network=host", "--volume", f"{volume}:/var/lib/claude-cli-bridge",
        "-e", f"PORT={port}", "-e", f"OLLAMA_PORT={ollama_port}", "-e", f"BRIDGE_API_KEY={KEY}",
        "-e", f"ANTHROPIC_BASE_URL={fake.base_url}", "-e", "ANTHROPIC_API_KEY=sk-ant-test-key",
        image,
    )  # fmt: skip
    server = Served(podman, name, volume, port, ollama_port)

    def up() -> bool:
        try:
            return httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_for(up, timeout=120, interval=0.2), server.logs()
        yield server
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
        podman("volume", "rm", "--force", volume, check=False)


def test_the_server_process_is_not_root(served):
    uid = served.podman("exec", served.name, "id", "-u")
    assert uid.stdout.strip() != "0"


def test_the_banner_says_its_urls_are_the_hosts_through_published_ports(served):
    logs = served.logs()
    assert "In a container: these URLs are the host's" in logs
    assert "Listening on every interface" not in logs


def test_an_openai_chat_is_answered_through_the_images_cli(served, fake):
    client = openai.OpenAI(base_url=f"{served.base_url}/v1", api_key=KEY)
    answer = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi from openai"}])
    assert answer.choices[0].message.content == "Hello from the fake."
    assert "hi from openai" in json.dumps(fake.model_calls()[-1].body)  # the CLI inside made the call


def test_an_ollama_chat_is_answered_through_the_images_cli(served, fake):
    client = ollama.Client(host=f"http://127.0.0.1:{served.ollama_port}", headers={"Authorization": f"Bearer {KEY}"})
    answer = client.chat(model="sonnet", messages=[{"role": "user", "content": "hi from ollama"}])
    assert answer.message.content == "Hello from the fake."
    assert "hi from ollama" in json.dumps(fake.model_calls()[-1].body)


def test_the_healthcheck_passes_and_the_usage_ledger_is_on_the_volume(served):
    assert served.podman("healthcheck", "run", served.name, check=False).returncode == 0
    mount = Path(served.podman("volume", "inspect", "--format", "{{.Mountpoint}}", served.volume).stdout.strip())
    assert wait_for(lambda: list((mount / "data").glob("usage-*.jsonl")), timeout=10)
    assert (mount / "state").is_dir()


def test_sigterm_drains_a_streaming_answer_and_stops_within_the_grace(served, fake):
    fake.enqueue(Reply(chunks=["still", " streaming", " while", " stopping", "."], delay=0.6))
    client = openai.OpenAI(base_url=f"{served.base_url}/v1", api_key=KEY)
    pieces: list[str] = []
    first = threading.Event()
    errors: list[BaseException] = []

    def stream() -> None:
        try:
            chunks = client.chat.completions.create(
                model="sonnet", messages=[{"role": "user", "content": "a slow one"}], stream=True
            )
            for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)
                    first.set()
        except BaseException as exc:
            errors.append(exc)
            first.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert first.wait(60)
    started = time.monotonic()
    served.podman("stop", "--time", str(GRACE), served.name, timeout=GRACE + 30)
    took = time.monotonic() - started
    reader.join(10)
    assert not errors, errors
    assert "".join(pieces) == "still streaming while stopping."  # the running turn was finished
    assert took < GRACE, f"podman stop took {took:.1f} s (the grace is {GRACE} s)"
    state = json.loads(served.podman("inspect", "--format", "{{json .State}}", served.name).stdout)
    assert state["ExitCode"] in (0, 143), state  # 0 as PID 1 (a re-raised SIGTERM is ignored there)
    logs = served.logs()
    assert "SIGTERM: draining (1 requests in flight)" in logs
    assert "Application shutdown complete" in logs


# -- the deploy files: no podman needed -----------------------------------------------------


def containerfile_env() -> dict[str, str]:
    text = (ROOT / "Containerfile").read_text().replace("\\\n", " ")
    block = re.search(r"^ENV (.+)$", text, re.MULTILINE)
    assert block
    return dict(item.split("=", 1) for item in block.group(1).split())


def test_the_compose_file_wires_open_webui_to_the_images_ollama_port():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    bridge, webui = compose["services"]["bridge"], compose["services"]["open-webui"]
    assert (ROOT / "deploy" / bridge["build"]["context"]).resolve() == ROOT
    assert bridge["build"]["dockerfile"] == "Containerfile"
    assert bridge["environment"]["BRIDGE_API_KEY"].startswith("${BRIDGE_API_KEY:?")  # required: it binds 0.0.0.0
    assert bridge["volumes"] == ["bridge:/var/lib/claude-cli-bridge"]
    assert bridge["stop_grace_period"] == f"{GRACE}s"
    env = containerfile_env()
    assert webui["image"] == "ghcr.io/open-webui/open-webui:main"
    assert webui["environment"]["OLLAMA_BASE_URL"] == f"http://bridge:{env['OLLAMA_PORT']}"
    assert f"127.0.0.1:{env['PORT']}:{env['PORT']}" in bridge["ports"]


@pytest.mark.parametrize("unit", ["claude-cli-bridge.service", "claude-cli-bridge.user.service"])
def test_the_systemd_units_verify_clean(unit, tmp_path):
    """``systemd-analyze verify`` without a word; the console script's path is replaced by a
    stand-in (verify checks that the command exists)."""
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("no systemd-analyze (Debian: apt-get install systemd)")
    text = (ROOT / "deploy" / unit).read_text()
    assert f"TimeoutStopSec={GRACE}\n" in text and "KillMode=mixed\n" in text  # SIGTERM to the server alone
    assert "ExecReload=/bin/kill -HUP $MAINPID\n" in text and "Restart=on-failure\n" in text
    stand_in = tmp_path / "claude-cli-bridge"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    exec_start = re.search(r"^ExecStart=(\S+) serve$", text, re.MULTILINE)
    assert exec_start
    copy = tmp_path / "claude-cli-bridge.service"
    copy.write_text(text.replace(exec_start.group(1), str(stand_in)))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    mode = ["--user"] if unit.endswith(".user.service") else []
    result = subprocess.run(
        [analyze, *mode, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
    if not mode:
        for option in ("NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict", "ProtectHome=yes"):
            assert option + "\n" in text
        assert "ReadWritePaths=/var/lib/claude-cli-bridge\n" in text
