"""``python -m claude_cli_bridge [serve|doctor|models|usage] [--setting value ...]``: the same
command as the ``claude-cli-bridge`` console script (``run/command.py``)."""

from __future__ import annotations

import sys

from .run.command import main

if __name__ == "__main__":
    sys.exit(main())
