"""How much context the CLI adds beyond the caller's content, before and after the caller-text
work: one one-line question, no system prompt, against the fake upstream, both launches in one
run. Reports the bytes of system text and of message text the upstream received, minus the
caller's own bytes, and the ratio.

"before" is the CLI as the bridge used to launch it: no ``--system-prompt`` (Claude Code's
agent prompt) and a plain stdin line; "after" is the bridge's launch today (``cli.launch``).

    python bench/bench_context.py [--cli PATH] [--tokenizer tokenizer.json]

Token counts need a tokenizer file: the legacy Claude tokenizer shipped in the
``anthropic==0.34.2`` wheel (``anthropic/tokenizer.json``) is an approximation of today's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fake_upstream import FakeAnthropic
from harness import find_test_cli

from claude_cli_bridge.cli import launch, process
from claude_cli_bridge.cli.launch import Launcher, process_env
from claude_cli_bridge.cli.profile import Profile
from claude_cli_bridge.core.messages import Message, TextBlock

QUESTION = "What is the capital of France?"


def measure(body: dict, count_tokens) -> dict[str, int]:
    system = body.get("system") or []
    system_texts = [b.get("text", "") for b in system] if isinstance(system, list) else [system]
    message_texts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            message_texts.append(content)
            continue
        message_texts += [block["text"] for block in content or [] if block.get("type") == "text"]
    added = [*system_texts, *message_texts]
    added.remove(QUESTION)
    result = {
        "system_bytes": sum(len(t.encode()) for t in system_texts),
        "message_bytes": sum(len(t.encode()) for t in message_texts),
        "added_bytes": sum(len(t.encode()) for t in added),
    }
    if count_tokens is not None:
        result["added_tokens_legacy_tokenizer"] = sum(count_tokens(t) for t in added)
    return result


async def one_turn(cli: str, fake: FakeAnthropic, before: bool, count_tokens=None) -> dict:
    saved_argv, saved_line = launch.build_argv, process.user_line
    if before:

        def old_argv(*args, **kwargs):
            argv = saved_argv(*args, **kwargs)
            index = argv.index("--system-prompt")
            return argv[:index] + argv[index + 2 :]

        launch.build_argv = old_argv
        process.user_line = lambda message: json.dumps({"type": "user", "message": message.to_anthropic()}) + "\n"
    try:
        env = {**process_env(), "ANTHROPIC_BASE_URL": fake.base_url, "ANTHROPIC_API_KEY": "sk-ant-bench"}
        state = Path(tempfile.mkdtemp(prefix="bench-context-"))
        launcher = Launcher(cli, state, env, Path("/tmp/claude-cli-bridge-work"), max_retries=0)
        launcher.prepare()
        fake.reset()
        cli_process = await launcher(Profile(model="sonnet"), ())
        try:
            async for _ in cli_process.turn(
                Message("user", (TextBlock(QUESTION),)), silence_timeout=60, turn_timeout=60
            ):
                pass
        finally:
            await cli_process.stop()
            launcher.cleanup()
        return measure(fake.received[-1].body, count_tokens)
    finally:
        launch.build_argv, process.user_line = saved_argv, saved_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", default=None)
    parser.add_argument("--tokenizer", default=None, help="a tokenizer.json to count tokens with")
    args = parser.parse_args()
    cli = args.cli or find_test_cli()
    count_tokens = None
    if args.tokenizer:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(args.tokenizer)
        count_tokens = lambda text: len(tokenizer.encode(text).ids)  # noqa: E731
    fake = FakeAnthropic().start()
    try:
        before = asyncio.run(one_turn(cli, fake, before=True, count_tokens=count_tokens))
        after = asyncio.run(one_turn(cli, fake, before=False, count_tokens=count_tokens))
    finally:
        fake.stop()
    result = {"question_bytes": len(QUESTION.encode()), "before": before, "after": after,
              "ratio_after_to_before": round(after["added_bytes"] / before["added_bytes"], 3)}  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
