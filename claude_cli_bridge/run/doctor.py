"""``doctor``: one line per check, pass or fail, each failure with its fix; exit non-zero on any.

Checks: Python; the CLI (found, version in the tested range, an older one shadowing a newer);
the login (the environment's, or the CLI's own ``claude auth status``; never a model call);
the working and data directories; both ports; the key and bind settings; the embedding
model; the feature probes (against a loopback stand-in, no quota); and, for information, the
subscription's windows as last seen. Checks that need the CLI are skipped without it; the
others still run, so one run lists every problem.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import tap
from ..accounts.config import AccountsConfig, AccountsFileError, from_settings, single_account
from ..accounts.credentials import account_env
from ..accounts.windows import SubscriptionWindows
from ..cli.launch import ENV_LOGINS, WorkDirUnusable, prepare_work_dir, process_env
from ..cli.locate import CliMissing, LoginUnknown, cli_version, find_cli, login_status, shadowed_bundle
from ..cli.probe import FATAL, FEATURES, ProbeReport, run_probes, workers_supported
from ..cli.profile import DROPPED_ENV
from ..cli.version import FEATURE_MINIMUMS, check_range, dotted, parse_version
from ..settings import Settings
from .server import StartupError, check_binding

MIN_PYTHON = (3, 11)
SHORT_KEY = 16
SETUP_TOKEN_HINT = (
    "run `claude setup-token` once and start the bridge with CLAUDE_CODE_OAUTH_TOKEN=<token> (the CLI then "
    "gets a private, empty configuration directory)"
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # passes, with something to know
    fix: str = ""

    def line(self) -> str:
        mark = "ok  " if self.ok and not self.warning else ("warn" if self.ok else "FAIL")
        fix = f" Fix: {self.fix}" if self.fix and (not self.ok or self.warning) else ""
        return f"[{mark}] {self.name}: {self.detail}{fix}"


def run_doctor(settings: Settings, out: Callable[[str], None] = print) -> int:
    checks: list[Check] = []

    def report(check: Check) -> None:
        checks.append(check)
        out(check.line())

    report(check_python())
    cli = check_cli(settings, report)
    accounts = check_accounts_file(settings, report)
    if cli is None:
        report(Check("login", False, "not checked: no usable CLI", fix="see the CLI check above"))
    elif accounts is not None and accounts.from_file is not None:
        environ = process_env()
        for account in accounts.accounts:
            env = account_env(account, accounts, environ, Path(settings.state_dir) / "doctor")
            if account.kind == "config_dir":
                report(check_login(cli, env=env, name=f"account {account.name}"))
            else:
                report(Check(f"account {account.name}", True, f"{account.describe()} (set)"))
    else:
        report(check_login(cli))
    work_ok = check_dirs(settings, report)
    for check in check_ports(settings):
        report(check)
    for check in check_keys(settings):
        report(check)
    report(check_embeddings(settings))
    report(check_tap(settings))
    if cli is not None and work_ok and not settings.probe_features:
        report(
            Check(
                "features",
                True,
                "not probed (PROBE_FEATURES=false): the server trusts the CLI's version",
                warning=True,
                fix="run doctor with --probe-features to check what this CLI can do (a few seconds, no quota)",
            )
        )
    probes = None
    if cli is not None and work_ok and settings.probe_features:
        path, version = cli
        probes = asyncio.run(run_probes(path, version, settings.cli_work_dir))
        for name, state in probes.states.items():
            if state.ok:
                report(Check(f"feature {name}", True, state.detail))
            elif name == "workers":  # turns are still served, the slower way
                report(Check(f"feature {name}", True, f"{FEATURES[name]}: {state.detail}", warning=True))
            else:
                consequence = "the server refuses to start" if name in FATAL else "requests that need it are refused"
                report(
                    Check(
                        f"feature {name}",
                        False,
                        f"{FEATURES[name]}: {state.detail} ({consequence})",
                        fix="install the CLI version the bridge is tested with (scripts/cli-version)",
                    )
                )
    if cli is not None:
        report(check_conversations(settings, cli[1], probes))
    lines = SubscriptionWindows(settings.data_dir).describe()
    if lines:
        out("Subscription windows (from the server's last reading):")
        for line in lines:
            out(f"       {line}")
    failures = sum(not check.ok for check in checks)
    out(f"{failures} problem{'s' if failures != 1 else ''} found." if failures else "Everything checked is fine.")
    return 1 if failures else 0


def check_python() -> Check:
    version = ".".join(str(n) for n in sys.version_info[:3])
    if sys.version_info[:2] >= MIN_PYTHON:
        return Check("Python", True, f"{version} ({sys.executable})")
    return Check(
        "Python", False, f"{version} is too old", fix=f"install Python {'.'.join(map(str, MIN_PYTHON))} or newer"
    )


def check_cli(settings: Settings, report: Callable[[Check], None]) -> tuple[str, str] | None:
    """The CLI's (path, version) when it can serve; None otherwise (and the reason reported)."""
    try:
        path = find_cli(settings.claude_cli_path)
    except CliMissing as exc:
        report(Check("CLI", False, exc.problem, fix=exc.fix))
        return None
    report(Check("CLI", True, path))
    raw = cli_version(path)
    version = parse_version(raw)
    verdict = check_range(version, raw)
    report(
        Check(
            "CLI version",
            verdict.verdict != "too_old",
            verdict.message,
            warning=verdict.verdict == "newer",
            fix="npm install -g @anthropic-ai/claude-code@latest (or set CLAUDE_CLI_PATH to a newer one)",
        )
    )
    if version is not None and not settings.claude_cli_path:
        note = shadowed_bundle(path, dotted(version))
        if note:
            report(Check("CLI on PATH", True, note, warning=True))
    if verdict.verdict == "too_old":
        return None
    return path, dotted(version or (0, 0, 0))


def check_accounts_file(settings: Settings, report: Callable[[Check], None]) -> AccountsConfig | None:
    """The accounts file reads and checks out (one line naming the entry and the fix if not)."""
    if not settings.accounts_file.strip():
        return single_account()
    try:
        accounts = from_settings(settings.accounts_file)
    except AccountsFileError as exc:
        report(Check("accounts file", False, str(exc), fix="fix the entry named; the server refuses to start"))
        return None
    report(
        Check(
            "accounts file",
            True,
            f"{settings.accounts_file}: {len(accounts.accounts)} account(s) ({', '.join(accounts.names)}), "
            f"{len(accounts.keys)} key(s)",
        )
    )
    return accounts


def check_login(cli: tuple[str, str], env: dict[str, str] | None = None, name: str = "login") -> Check:
    """Logged in, without a model call: a login in the environment, else ``claude auth status``
    (with ``env``: that account's environment)."""
    env = process_env() if env is None else env
    from_env = [variable for variable in ENV_LOGINS if env.get(variable)]
    if from_env:
        return Check(
            name,
            True,
            f"from the environment ({', '.join(from_env)}); the CLI runs with a private configuration directory",
        )
    path, _ = cli
    # A config_dir account logs in in its own directory, not the default ~/.claude.
    directory = env.get("CLAUDE_CONFIG_DIR") if name.startswith("account ") else None
    run = f"`CLAUDE_CONFIG_DIR={directory} claude`" if directory else "`claude`"
    try:
        status = login_status(path, {key: value for key, value in env.items() if key not in DROPPED_ENV})
    except LoginUnknown as exc:
        return Check(
            name,
            False,
            f"`claude auth status` gave no answer ({exc})",
            fix=f"run {run} once and log in, or " + SETUP_TOKEN_HINT,
        )
    if not status.logged_in:
        return Check(
            name,
            False,
            "the CLI is not logged in (`claude auth status`: loggedIn false)",
            fix=f"run {run} once and log in with your subscription (/login), or " + SETUP_TOKEN_HINT,
        )
    detail = f"logged in ({status.method or '?'}" + (f", {status.subscription} plan" if status.subscription else "")
    detail += f") in {status.config_dir or '~/.claude'}"
    email = status.email
    if email:
        return Check(
            name,
            True,
            detail + f"; the CLI tells the model this account's e-mail address ({email}) in every conversation",
            warning=True,
            fix=SETUP_TOKEN_HINT,
        )
    return Check(name, True, detail)


def check_dirs(settings: Settings, report: Callable[[Check], None]) -> bool:
    try:
        prepare_work_dir(settings.cli_work_dir)
        report(Check("working directory", True, f"{settings.cli_work_dir} (empty, private)"))
        work_ok = True
    except (WorkDirUnusable, OSError) as exc:
        report(Check("working directory", False, str(exc), fix="set CLI_WORK_DIR to a directory of your own"))
        work_ok = False
    data = settings.data_dir
    try:
        data.mkdir(parents=True, exist_ok=True)
        probe = data / ".doctor-write-test"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
        report(Check("data directory", True, f"{data} (usage ledger, error log, windows)"))
    except OSError as exc:
        report(Check("data directory", False, f"{data} is not writable ({exc.strerror})", fix="set DATA_DIR"))
    return work_ok


def check_ports(settings: Settings) -> list[Check]:
    checks = []
    for setting, port, what in (("PORT", settings.port, "OpenAI"), ("OLLAMA_PORT", settings.ollama_port, "Ollama")):
        if not port:
            checks.append(Check(f"{what} port", True, f"off ({setting}=0)"))
            continue
        flag = "--" + setting.lower().replace("_", "-")
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((settings.host, port))
            except OSError as exc:
                reason = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
                if _is_bridge(settings.host, port):
                    # doctor run beside a running bridge (`podman exec ... doctor`): its port is
                    # taken by that bridge, which is no problem of the configuration.
                    checks.append(
                        Check(
                            f"{what} port",
                            True,
                            f"{settings.host}:{port} is {reason}: a claude-cli-bridge is running there",
                            warning=True,
                            fix=f"to start another bridge beside it, set {setting} (or {flag}) to a free port",
                        )
                    )
                    continue
                checks.append(
                    Check(
                        f"{what} port",
                        False,
                        f"{settings.host}:{port} is {reason}",
                        fix=f"set {setting} (or {flag}) to a free port, or stop the program using it",
                    )
                )
                continue
        checks.append(Check(f"{what} port", True, f"{settings.host}:{port} is free"))
    return checks


def _is_bridge(host: str, port: int) -> bool:
    import httpx

    target = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    try:
        return "cli_version" in httpx.get(f"http://{target}:{port}/health", timeout=1).json()
    except Exception:
        return False


def check_keys(settings: Settings) -> list[Check]:
    keys = settings.api_keys()
    try:
        file_keys = len(from_settings(settings.accounts_file).keys)
    except AccountsFileError:
        file_keys = 0  # the accounts file check says what is wrong with it
    if file_keys and not keys:
        return [
            Check("keys and binding", True, f"{file_keys} key(s) from the accounts file required on {settings.host}")
        ]
    try:
        check_binding(settings)
    except StartupError as exc:
        return [Check("keys and binding", False, str(exc).split(":")[0], fix="set BRIDGE_API_KEY or bind 127.0.0.1")]
    checks = []
    if keys:
        short = [n + 1 for n, key in enumerate(keys) if len(key) < SHORT_KEY]
        detail = f"{len(keys)} key{'s' if len(keys) != 1 else ''} required on {settings.host}"
        if short:
            checks.append(
                Check(
                    "keys and binding",
                    True,
                    detail + f"; key {', '.join(map(str, short))} is shorter than {SHORT_KEY} characters",
                    warning=True,
                    fix="use long random keys (python -c 'import secrets; print(secrets.token_urlsafe(32))')",
                )
            )
        else:
            checks.append(Check("keys and binding", True, detail))
    elif settings.allow_public_bind and settings.host not in ("127.0.0.1", "localhost", "::1"):
        checks.append(
            Check(
                "keys and binding",
                True,
                f"{settings.host} without a key (ALLOW_PUBLIC_BIND): whoever reaches the port uses your subscription",
                warning=True,
                fix="set BRIDGE_API_KEY",
            )
        )
    else:
        checks.append(Check("keys and binding", True, f"no key needed: bound to {settings.host} (loopback)"))
    if "*" in settings.cors_origin_list() and not keys:
        checks.append(
            Check(
                "CORS",
                True,
                "CORS_ORIGINS=* without a key: any web page you visit can use the bridge",
                warning=True,
                fix="list the origins that need it, or set BRIDGE_API_KEY",
            )
        )
    return checks


def check_tap(settings: Settings) -> Check:
    """Whether the upstream tap can reach the upstream the way this environment asks."""
    if not settings.upstream_tap:
        return Check(
            "upstream tap",
            True,
            "off (UPSTREAM_TAP=off): the CLI connects to the upstream itself",
            warning=True,
            fix="without the tap the model sees the CLI's environment note and spares are not warmed",
        )
    env = process_env()
    try:
        tap.check_environment(settings, env)
    except ValueError as exc:
        return Check("upstream tap", False, str(exc), fix="use an http:// proxy, or set UPSTREAM_TAP=off")
    return Check("upstream tap", True, f"relays the CLI's requests to {tap.origin(tap.upstream_base_url(env))}")


def check_conversations(settings: Settings, version: str, probes: ProbeReport | None) -> Check:
    """Which way turns will be served: workers (any warm process serves any turn) or held
    processes and transcript rebuilds, and why (the engine's own rule, ``workers_supported``)."""
    name = "conversations"
    if not settings.upstream_tap:
        return Check(name, True, "transcripts: held processes and transcript rebuilds (UPSTREAM_TAP=off)",
                     warning=True, fix="set UPSTREAM_TAP=on: then any warm process serves any turn")  # fmt: skip
    if workers_supported(probes or ProbeReport.unprobed(version), version):
        how = "checked by the workers probe" if probes is not None else "trusted from the CLI's version"
        return Check(name, True, f"workers: any warm process serves any turn ({how})")
    minimum = dotted(FEATURE_MINIMUMS["workers"])
    return Check(
        name,
        True,
        f"transcripts: this CLI's requests are not in the shape the tap knows (Claude Code {version})",
        warning=True,
        fix=f"install the CLI version in scripts/cli-version ({minimum} or newer)",
    )


def check_embeddings(settings: Settings) -> Check:
    """Loadable now (a local directory or the cache), or where it will be downloaded; no download."""
    if settings.embed_model_path.strip():
        from ..embeddings.engine import EmbeddingEngine
        from ..errors import EmbeddingUnavailable

        engine = EmbeddingEngine(settings, threads=1)
        try:
            asyncio.run(engine.load())
        except EmbeddingUnavailable as exc:
            return Check("embedding model", False, exc.message, fix="point EMBED_MODEL_PATH at an ONNX model directory")
        finally:
            engine.close()
        return Check("embedding model", True, f"{settings.embed_model_path} loads ({engine.dimensions} dimensions)")
    name = settings.embed_model.strip()
    cache = Path(settings.embed_cache_dir)
    try:
        import fastembed

        from ..embeddings.engine import _quietly  # a cache miss is expected here, not an error to print

        _quietly(lambda: fastembed.TextEmbedding(name, cache_dir=str(cache), threads=1, local_files_only=True))
    except Exception:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        if offline:
            return Check(
                "embedding model",
                False,
                f"{name} is not in {cache} and HF_HUB_OFFLINE is set: embeddings requests will fail",
                fix="download it once while online, or set EMBED_MODEL_PATH to a local ONNX model",
            )
        return Check(
            "embedding model",
            True,
            f"{name} is not downloaded yet: the first embeddings request downloads it into {cache}",
            warning=True,
            fix="set EMBED_PRELOAD=true to download it at start-up, or EMBED_MODEL_PATH for an offline model",
        )
    return Check("embedding model", True, f"{name} loads from {cache}")
