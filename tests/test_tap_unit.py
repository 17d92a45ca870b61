"""The tap's pure parts: the CLI's environment note, the windows headers, the warm-up exchange."""

from __future__ import annotations

import copy

import pytest
from fake_upstream import unified_headers

from claude_cli_bridge.cli.launch import tap_env
from claude_cli_bridge.core.limits import WindowReading
from claude_cli_bridge.tap.headers import rate_limit_from_headers
from claude_cli_bridge.tap.rewrite import cut_environment_note, strip_environment_note
from claude_cli_bridge.tap.warmup import (
    WARMUP_REPLY,
    WarmupMismatch,
    fingerprint,
    is_warmup_request,
    strip_warmup,
    warmup_response,
    warmup_text,
)

pytestmark = pytest.mark.unit

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
    info = rate_limit_from_headers({key.title(): value for key, value in headers.items()})  # any case
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
    assert rate_limit_from_headers({"content-type": "text/event-stream"}) is None
    info = rate_limit_from_headers(
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


WARM = warmup_text("0123abcd")


def _warm_body(*caller: dict, between: tuple = ({"role": "system", "content": "notes"},)) -> dict:
    return {
        "system": [
            {"type": "text", "text": f"x-anthropic-billing-header: cc_version=2.1.332.{fingerprint(WARM, '2.1.332')};"}
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": WARM}]},
            *between,
            {"role": "assistant", "content": [{"type": "text", "text": WARMUP_REPLY}]},
            *caller,
        ],
    }


def test_the_warm_up_exchange_goes_and_the_request_is_a_fresh_processs():
    caller = {
        "role": "user",
        "content": [{"type": "text", "text": "the caller's first words", "cache_control": {"t": 1}}],
    }
    body = _warm_body(caller)
    strip_warmup(body, WARM)
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "the caller's first words"}]},
        {"role": "system", "content": [{"type": "text", "text": "notes", "cache_control": {"t": 1}}]},
    ]
    assert body["system"][0]["text"].endswith(f".{fingerprint('the caller' + chr(39) + 's first words', '2.1.332')};")


def test_reminders_in_the_warm_up_message_move_to_the_callers_first_message():
    body = _warm_body({"role": "user", "content": "hi"}, between=())
    body["messages"][0]["content"].insert(0, {"type": "text", "text": "<system-reminder>\ndate\n</system-reminder>"})
    strip_warmup(body, WARM)
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<system-reminder>\ndate\n</system-reminder>"},
                {"type": "text", "text": "hi"},
            ],
        }
    ]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b: b["messages"].pop(0),  # no warm-up message
        lambda b: b["messages"][-2]["content"][0].update(text="something else"),  # another reply
        lambda b: b["messages"].insert(1, {"role": "user", "content": "injected"}),
        lambda b: b["messages"].pop(),  # nothing of the caller's
        lambda b: b["messages"][-1]["content"].append({"type": "text", "text": WARM}),  # the marker elsewhere
    ],
)
def test_a_request_that_does_not_fit_is_refused(tamper):
    body = _warm_body({"role": "user", "content": [{"type": "text", "text": "hi"}]})
    tamper(body)
    with pytest.raises(WarmupMismatch):
        strip_warmup(body, WARM)


def test_the_warm_up_request_is_recognised_and_answered_in_the_upstreams_format():
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": [{"type": "text", "text": WARM}]}]}
    assert is_warmup_request(body, WARM)
    assert not is_warmup_request({**body, "messages": [{"role": "user", "content": "hi"}]}, WARM)
    content_type, data = warmup_response(body)
    assert content_type == b"text/event-stream"
    events = [line[7:] for line in data.decode().splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    content_type, data = warmup_response({**body, "stream": False})
    assert content_type == b"application/json" and b'"text": "OK"' in data


def test_the_cli_reaches_the_tap_without_a_proxy():
    env = {"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "internal"}
    assert tap_env(env, "http://127.0.0.1:1/p/default") == {
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:1/p/default",
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "internal,127.0.0.1",
    }


def test_the_note_inside_a_tool_result_goes_and_the_callers_result_stays():
    """A resumed conversation of a model given reminders: the CLI writes its notes inside the
    last tool result (docs/cli.md "Workers"); only the note's block goes."""
    note = {"type": "text", "text": "<system-reminder>\n" + ENV + "</system-reminder>\n"}
    date = {"type": "text", "text": "<system-reminder>\nToday's date is 2026-12-01.\n</system-reminder>"}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "sunny\n"}, note, date]}
    body = {"messages": [{"role": "user", "content": [result]}]}
    assert strip_environment_note(body)
    assert body["messages"][0]["content"][0]["content"] == [{"type": "text", "text": "sunny\n"}, date]


def test_entries_that_are_not_objects_stay_where_a_note_is_cut():
    note = {"type": "text", "text": "<system-reminder>\n" + ENV + "</system-reminder>"}
    body = {"messages": [None, {"role": "user", "content": [None, {"type": "text", "text": "hi"}, note]}]}
    assert strip_environment_note(body)
    assert body["messages"] == [None, {"role": "user", "content": [None, {"type": "text", "text": "hi"}]}]
