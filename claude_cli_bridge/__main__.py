"""``python -m claude_cli_bridge``: settings from the environment and .env, then both listeners."""

from __future__ import annotations

import sys

from .server import run
from .settings import Settings


def main() -> int:
    return run(Settings())


if __name__ == "__main__":
    sys.exit(main())
