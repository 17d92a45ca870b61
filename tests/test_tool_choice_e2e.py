"""Forcing and shaping tool calls: the deprecated functions API, tool_choice required and
named (reaching the upstream, and an answer without the forced call is an error, not a 200),
instructor's default tools mode. Real CLI, fake upstream, the openai SDK, and instructor from
its own virtualenv (scripts/test installs it into .cache/instructor)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anthropic
import openai
import pytest
from fake_upstream import Reply, ToolUse, tool_results
from fake_upstream import weather_model as _weather_model

pytestmark = pytest.mark.e2e

WEATHER_FUNCTION = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER = {"type": "function", "function": WEATHER_FUNCTION}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture
def client(bridge):
    return openai.OpenAI(base_url=bridge.openai_url, api_key="unused", max_retries=0)


def weather_model_without_text(body: dict) -> Reply:
    """The weather model, calling the tool with no text before the call."""
    return _weather_model(body, preamble=None)


# -- legacy functions ----------------------------------------------------------------------------
def test_functions_round_trip_with_function_call(client, fake):
    fake.handler = weather_model_without_text
    messages: list[dict] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(model="sonnet", messages=messages, functions=[WEATHER_FUNCTION])
    upstream = fake.received[-1].body
    assert "get_weather" in {tool["name"] for tool in upstream["tools"]}
    assert upstream["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    choice = first.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.tool_calls is None
    assert choice.message.function_call.name == "get_weather"
    assert json.loads(choice.message.function_call.arguments) == {"city": "Oslo"}

    messages += [
        {"role": "assistant", "content": None, "function_call": choice.message.function_call.model_dump()},
        {"role": "function", "name": "get_weather", "content": "-3 C and snowing"},
    ]
    second = client.chat.completions.create(model="sonnet", messages=messages, functions=[WEATHER_FUNCTION])
    assert "-3 C and snowing" in second.choices[0].message.content
    assert second.choices[0].finish_reason == "stop"
    results = tool_results(fake.received[-1].body)
    assert results and "-3 C and snowing" in json.dumps(results[-1]["content"])


def test_streamed_functions_answer_with_function_call_deltas(client, fake):
    fake.handler = weather_model_without_text
    chunks = list(
        client.chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": "Weather?"}],
            functions=[WEATHER_FUNCTION],
            function_call={"name": "get_weather"},
            stream=True,
        )
    )
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    calls = [delta.function_call for delta in deltas if delta.function_call]
    assert calls[0].name == "get_weather"
    assert json.loads("".join(call.arguments or "" for call in calls)) == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "function_call"
    assert fake.received[-1].body["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }


# -- tool_choice ---------------------------------------------------------------------------------
def test_tool_choice_required_forces_a_call_at_the_upstream(client, fake):
    fake.handler = weather_model_without_text
    answer = client.chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "Hi"}], tools=[WEATHER, TIME], tool_choice="required"
    )
    assert answer.choices[0].finish_reason == "tool_calls"
    body = fake.received[-1].body
    assert body["tool_choice"] == {"type": "any"}
    assert "thinking" not in body, "the upstream refuses a forced tool choice while the model thinks"


def test_a_named_tool_choice_forces_that_tool(client, fake):
    fake.handler = weather_model_without_text
    answer = client.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": "Hi"}],
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    assert answer.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert fake.received[-1].body["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }


def test_required_without_a_call_in_the_answer_is_an_error_not_a_200(client, fake):
    fake.enqueue(Reply(chunks=["I refuse to call tools."]))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": "Hi"}], tools=[WEATHER], tool_choice="required"
        )
    assert caught.value.status_code == 502
    assert "tool_choice required a tool call" in str(caught.value)


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"tool_choice": "required"}, "needs tools"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "not among"),
        ({"tools": [WEATHER], "tool_choice": {"type": "allowed_tools"}}, "tool_choice must be"),
    ],
)
def test_impossible_tool_choices_are_a_400(client, extra, message):
    with pytest.raises(openai.BadRequestError, match=message):
        client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "Hi"}], **extra)


INSTRUCTOR_PYTHON = Path(
    os.environ.get("INSTRUCTOR_PYTHON") or Path(__file__).parent.parent / ".cache" / "instructor" / "bin" / "python"
)
INSTRUCTOR_SCRIPT = """
import json, sys
import instructor, openai
from pydantic import BaseModel

class User(BaseModel):
    name: str
    age: int

patched = instructor.from_openai(openai.OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0))
user = patched.chat.completions.create(
    model="sonnet", response_model=User, messages=[{"role": "user", "content": "Ada is 36."}]
)
print(json.dumps(user.model_dump()))
"""


def test_instructor_default_tools_mode_gets_its_object(bridge, fake):
    if not INSTRUCTOR_PYTHON.exists() or subprocess.run([str(INSTRUCTOR_PYTHON), "-c", "import instructor"]).returncode:
        pytest.skip(
            "no instructor: scripts/test installs it into .cache/instructor (tests/requirements-instructor.txt)"
        )
    fake.handler = lambda body: Reply(chunks=[], tool_uses=[ToolUse("mcp__client__User", {"name": "Ada", "age": 36})])
    result = subprocess.run(
        [str(INSTRUCTOR_PYTHON), "-c", INSTRUCTOR_SCRIPT, bridge.openai_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {"name": "Ada", "age": 36}
    assert fake.received[-1].body["tool_choice"]["name"] == "User"


# -- Anthropic Messages ---------------------------------------------------------------------
@pytest.fixture
def claude(bridge):
    return anthropic.Anthropic(base_url=bridge.base_url, api_key="x", max_retries=0)


def test_anthropic_forced_tool_choice_reaches_the_upstream(claude, fake):
    tool = {"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
    fake.handler = lambda body: Reply(chunks=["no call"])
    with pytest.raises(anthropic.APIStatusError):  # the fake ignores the choice: a 502, never a 200
        claude.messages.create(
            model="sonnet",
            max_tokens=64,
            tools=[tool],
            tool_choice={"type": "tool", "name": "lookup"},
            messages=[{"role": "user", "content": "x"}],
        )
    assert fake.received[-1].body["tool_choice"] == {"type": "tool", "name": "lookup"}
