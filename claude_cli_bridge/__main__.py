"""``python -m claude_cli_bridge``: settings from the environment and .env, then both listeners.

``python -m claude_cli_bridge doctor`` checks the installation instead: finds the CLI, reads
its version, and runs the transcript probe.
"""

from __future__ import annotations

import asyncio
import sys

from .cli.locate import CliMissing, cli_version, find_cli
from .probe import run_probe
from .server import run
from .settings import Settings


def doctor(settings: Settings) -> int:
    try:
        cli = find_cli(settings.claude_cli_path)
    except CliMissing as exc:
        print(f"CLI: missing. {exc}")
        return 1
    print(f"CLI: {cli} (version {cli_version(cli) or 'unknown'})")
    result = asyncio.run(run_probe(cli))
    print(f"transcript probe: {'ok' if result.ok else 'FAILED'}: {result.detail}")
    if not result.ok:
        print("history would be flattened into one prompt with this CLI")
    return 0 if result.ok else 1


def main(argv: list[str]) -> int:
    settings = Settings()
    if argv[:1] == ["doctor"]:
        return doctor(settings)
    if argv:
        print("usage: python -m claude_cli_bridge [doctor]", file=sys.stderr)
        return 2
    return run(settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
