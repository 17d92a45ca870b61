"""tap.inject.splice on bodies of the shapes the CLI (2.1.332) sends: a worker's request becomes
the body of a fresh process resumed from the caller's history, or is refused naming why.
(test_workers_e2e.py compares the two paths with the real CLI.)"""

from __future__ import annotations

import copy

import pytest

from claude_cli_bridge.tap.inject import ANSWER_LOCALLY, SIGNED_BY, Assignment, InjectMismatch, splice
from claude_cli_bridge.tap.warmup import fingerprint

pytestmark = pytest.mark.unit

VERSION = "2.1.332"
NOTES = "# Environment\nYou have been invoked...\n\nToday's date is 2026-12-03."
EXTRA = {"output_config": {"effort": "medium"}}
MARK = {"type": "ephemeral"}
MARKER = "Bridge turn 1234: the upstream tap writes the conversation here."


def billing(first: str) -> dict:
    return {
        "type": "text",
        "text": f"x-anthropic-billing-header: cc_version={VERSION}.{fingerprint(first, VERSION)}; cc_entrypoint=sdk-cli;",
    }


IDENTITY = {
    "type": "text",
    "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK.",
    "cache_control": MARK,
}


def user(text: str, marked: bool = False) -> dict:
    block = {"type": "text", "text": text, **({"cache_control": MARK} if marked else {})}
    return {"role": "user", "content": [block]}


def assistant(*blocks: dict) -> dict:
    return {"role": "assistant", "content": list(blocks)}


def worker_body(messages: list[dict], first: str = "warm-up", tools: list | None = None) -> dict:
    return {
        "model": "claude-sonnet-5-5",
        "messages": messages,
        "system": [billing(first), IDENTITY],
        "tools": tools if tools is not None else [],
        "metadata": {"user_id": "x"},
        "max_tokens": 128000,
        "stream": True,
    }


def first_turn() -> dict:
    """A worker's first turn: the placeholder, then the CLI's notes (marked)."""
    notes = {"role": "system", "content": [{"type": "text", "text": NOTES, "cache_control": MARK}], **EXTRA}
    return worker_body([user(MARKER), notes], first=MARKER)


def later_turn() -> dict:
    """A warmed worker's later turn: warm-up, notes, the tap's reply, an earlier turn, the placeholder."""
    notes = {"role": "system", "content": NOTES, **EXTRA}
    return worker_body(
        [user("warm-up"), notes, assistant({"type": "text", "text": "OK"}), user("Bridge turn 0"),
         assistant({"type": "text", "text": "someone else's answer"}), user(MARKER, marked=True)]
    )  # fmt: skip


WEATHER = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}


def test_a_new_conversation_takes_a_fresh_process_shape():
    assignment = Assignment(MARKER, (user("Hello there"),), system="Be brief.", tools=(WEATHER,),
                            tool_choice={"type": "any"}, caller_tools=frozenset({"get_weather"}))  # fmt: skip
    body = splice(later_turn(), assignment)
    assert isinstance(body, dict)
    assert body["messages"] == [
        user("Hello there"),
        {"role": "system", "content": [{"type": "text", "text": NOTES, "cache_control": MARK}], **EXTRA},
    ]
    assert body["system"] == [
        billing("Hello there"),
        IDENTITY,
        {"type": "text", "text": "Be brief.", "cache_control": MARK},
    ]
    assert body["tools"] == [WEATHER] and body["tool_choice"] == {"type": "any"}
    assert body["model"] == "claude-sonnet-5-5" and body["max_tokens"] == 128000  # the worker's own
    assert "someone else's answer" not in str(body)


def test_a_history_takes_the_resumed_shape_with_one_cache_mark_at_the_end():
    history = (user("q1"), assistant({"type": "text", "text": "a1"}), user("q2"))
    body = splice(first_turn(), Assignment(MARKER, history))
    assert isinstance(body, dict)
    assert body["messages"] == [
        user("q1"),
        {"role": "system", "content": [], **EXTRA},
        assistant({"type": "text", "text": "a1"}),
        user("q2"),
        {"role": "system", "content": [{"type": "text", "text": NOTES, "cache_control": MARK}]},
    ]
    assert body["system"] == [billing("q1"), IDENTITY]
    assert body["tools"] == []


def test_the_clis_follow_up_after_the_callers_calls_is_answered_locally():
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    error = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "No such tool available", "is_error": True}
    body = first_turn()
    body["messages"][-1]["content"][0].pop("cache_control")
    body["messages"] += [assistant(call), {"role": "user", "content": [{**error, "cache_control": MARK}]}]
    assignment = Assignment(MARKER, (user("weather?"),), tools=(WEATHER,), caller_tools=frozenset({"get_weather"}))
    assert splice(body, assignment) == ANSWER_LOCALLY


def test_the_clis_own_tool_round_trip_keeps_the_turns_tail():
    call = {"type": "tool_use", "id": "toolu_s", "name": "StructuredOutput", "input": {"a": 1}}
    result = {"type": "tool_result", "tool_use_id": "toolu_s", "content": "Structured output provided"}
    body = first_turn()
    body["messages"][-1]["content"][0].pop("cache_control")
    body["messages"] += [assistant(call), {"role": "user", "content": [{**result, "cache_control": MARK}]}]
    spliced = splice(body, Assignment(MARKER, (user("q"),)))
    assert isinstance(spliced, dict)
    assert spliced["messages"][-2:] == [
        assistant(call),
        {"role": "user", "content": [{**result, "cache_control": MARK}]},
    ]
    assert spliced["messages"][1] == {"role": "system", "content": NOTES, **EXTRA}


def test_thinking_signed_by_another_model_is_left_out_as_the_cli_leaves_it_out():
    mine = {"type": "thinking", "thinking": "t", "signature": "s", SIGNED_BY: "claude-sonnet-5-5"}
    other = {"type": "thinking", "thinking": "o", "signature": "z", SIGNED_BY: "claude-opus-5"}
    history = (
        user("q1"),
        assistant(mine, {"type": "text", "text": "a"}),
        user("q2"),
        assistant(other, {"type": "text", "text": "b"}),
        user("q3"),
    )
    body = splice(first_turn(), Assignment(MARKER, history))
    assert isinstance(body, dict)
    answers = [m["content"] for m in body["messages"] if m["role"] == "assistant"]
    assert answers == [
        [{"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "text", "text": "a"}],
        [{"type": "text", "text": "b"}],
    ]


def test_the_assignment_is_not_changed():
    history = (user("q1"), assistant({"type": "text", "text": "a1"}), user("q2"))
    before = copy.deepcopy(history)
    splice(first_turn(), Assignment(MARKER, history))
    assert history == before


def user_image() -> dict:
    return {"role": "user", "content": [{"type": "image", "source": {}}]}


def test_models_with_reminders_get_them_in_the_newest_user_message_after_any_tool_results():
    """Older model ids: the CLI's notes are <system-reminder> blocks of the first user message."""
    reminder = {"type": "text", "text": "<system-reminder>\nToday's date is 2026-12-03.\n</system-reminder>\n"}
    body = worker_body(
        [{"role": "user", "content": [reminder, {"type": "text", "text": MARKER, "cache_control": MARK}]}], first=MARKER
    )
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]}
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    plain = splice(body, Assignment(MARKER, (user("q1"), assistant({"type": "text", "text": "a1"}), user("q2"))))
    after_tools = splice(body, Assignment(MARKER, (user("q1"), assistant(call), {"role": "user", "content": [result]})))
    assert isinstance(plain, dict) and isinstance(after_tools, dict)
    assert plain["messages"][-1] == {
        "role": "user",
        "content": [reminder, {"type": "text", "text": "q2", "cache_control": MARK}],
    }
    assert after_tools["messages"][-1] == {"role": "user", "content": [result, {**reminder, "cache_control": MARK}]}
    assert len(plain["messages"]) == 3 and not any(m["role"] == "system" for m in plain["messages"])


def broken(change) -> dict:
    body = later_turn()
    change(body)
    return body


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (broken(lambda b: b["messages"].pop()), "placeholder"),
        (broken(lambda b: b["messages"].pop(1)), "notes"),
        (broken(lambda b: b["messages"][0]["content"][0].update(cache_control=MARK)), "cache marks"),
        (broken(lambda b: b["system"].append({"type": "text", "text": "extra"})), "system blocks"),
        (broken(lambda b: b["system"].__setitem__(0, billing("not the first message"))), "digits"),
        (broken(lambda b: b["messages"].append(user("Continue from where you left off."))), "after the turn's prompt"),
        (
            broken(lambda b: b["messages"].extend([assistant({"type": "text", "text": "x"}), user_image()])),
            "other than text",
        ),
        (broken(lambda b: b.__setitem__("messages", "text")), "no messages"),
    ],
)
def test_a_body_of_another_shape_is_refused_naming_why(body, why):
    with pytest.raises(InjectMismatch, match=why):
        splice(body, Assignment(MARKER, (user("q"),)))
