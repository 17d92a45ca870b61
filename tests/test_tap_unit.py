"""The tap's pure parts: removing the CLI's environment note, reading the windows headers."""

from __future__ import annotations

import copy

import pytest
from fake_upstream import unified_headers

from claude_cli_bridge.core.limits import RateLimitInfo, WindowReading
from claude_cli_bridge.tap.rewrite import cut_environment_note, strip_environment_note

ENV = (
    "# Environment\nYou have been invoked in the following environment: \n - Primary working directory: /tmp/w\n"
    " - Platform: linux\n - In `curl`, send untrusted values with `--form-string`, not `-F`."
)
TAIL = "You are powered by the model named Sonnet 5.5.\n\nToday's date is 2026-12-01."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"{ENV}\n\n{TAIL}", TAIL),
        (ENV, ""),
        (f"<system-reminder>\n{ENV}\n</system-reminder>", ""),
        (f"<system-reminder>\n{ENV}\n\n{TAIL}\n</system-reminder>", f"<system-reminder>\n{TAIL}\n</system-reminder>"),
        ("caller text\n# Environment\nx", None),  # not at the start: not the CLI's
        ("<system-reminder>\nToday's date is 2026-12-01.\n</system-reminder>", None),
    ],
)
def test_cut_environment_note(text, expected):
    assert cut_environment_note(text) == expected


def test_the_system_message_keeps_its_other_lines_and_cache_mark():
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {
                "role": "system",
                "content": [{"type": "text", "text": f"{ENV}\n\n{TAIL}", "cache_control": {"type": "ephemeral"}}],
            },
        ]
    }
    assert strip_environment_note(body)
    assert body["messages"][1]["content"] == [{"type": "text", "text": TAIL, "cache_control": {"type": "ephemeral"}}]
    assert body["messages"][0] == {"role": "user", "content": [{"type": "text", "text": "hi"}]}


def test_a_system_message_that_is_only_the_note_goes_and_string_content_too():
    body = {"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": ENV}]}
    assert strip_environment_note(body)
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_a_reminder_after_tool_results_goes_and_the_cache_mark_moves_to_the_last_block():
    result = {"type": "tool_result", "tool_use_id": "t", "content": "42"}
    caller = {"type": "text", "text": "the caller's words"}
    reminder = {"type": "text", "text": f"<system-reminder>\n{ENV}\n</system-reminder>", "cache_control": {"x": 1}}
    body = {"messages": [{"role": "user", "content": [result, caller, reminder]}]}
    assert strip_environment_note(body)
    assert body["messages"][0]["content"] == [result, {**caller, "cache_control": {"x": 1}}]


def test_caller_text_that_starts_with_the_heading_in_a_user_message_stays():
    body = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": ENV}]}, {"role": "user", "content": ENV}]
    }
    before = copy.deepcopy(body)
    assert not strip_environment_note(body)
    assert body == before


def test_windows_from_headers():
    headers = unified_headers(
        "allowed_warning", five_hour=(0.91, 1800000000), seven_day=(0.4, 1800500000), claim="five_hour"
    )
    info = RateLimitInfo.from_headers({key.title(): value for key, value in headers.items()})  # any case
    assert info is not None
    assert (info.status, info.window, info.resets_at, info.using_overage) == (
        "allowed_warning",
        "five_hour",
        1800000000,
        False,
    )
    assert set(info.windows) == {
        WindowReading("five_hour", 0.91, 1800000000),
        WindowReading("seven_day", 0.4, 1800500000),
    }


def test_no_unified_headers_no_reading_and_bad_values_are_dropped():
    assert RateLimitInfo.from_headers({"content-type": "text/event-stream"}) is None
    info = RateLimitInfo.from_headers(
        {
            "anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-5h-utilization": "nan",
            "anthropic-ratelimit-unified-5h-reset": "soon",
            "anthropic-ratelimit-unified-overage-status": "allowed",
            "anthropic-ratelimit-unified-overage-reset": "1800000000",
        }
    )
    assert info is not None
    assert info.windows == (WindowReading("five_hour"),)
    assert (info.using_overage, info.overage_status, info.overage_resets_at) == (True, "allowed", 1800000000)
