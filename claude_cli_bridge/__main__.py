"""``python -m claude_cli_bridge``: settings from the environment and .env, then both listeners.

``python -m claude_cli_bridge doctor`` checks the installation instead (``doctor.py``).
"""

from __future__ import annotations

import sys

from .doctor import run_doctor
from .server import run
from .settings import Settings


def main(argv: list[str]) -> int:
    settings = Settings()
    if argv[:1] == ["doctor"]:
        return run_doctor(settings)
    if argv:
        print("usage: python -m claude_cli_bridge [doctor]", file=sys.stderr)
        return 2
    return run(settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
