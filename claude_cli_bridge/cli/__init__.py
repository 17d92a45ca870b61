"""Everything about the Claude Code CLI: its JSON lines, one process, one turn."""
