"""The legacy Completions translators, pure: prompts (and fill in the middle) to neutral turns,
neutral events to the SDK's completion."""

from __future__ import annotations

import pytest
from openai.types import Completion

from claude_cli_bridge.api.openai import completions
from claude_cli_bridge.core.turn import TextDelta, TurnDone, Usage

pytestmark = pytest.mark.unit


# -- legacy completions ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, text, system",
    [
        ({"prompt": "p"}, "p", None),
        ({"prompt": ["p"]}, "p", None),
        ({"prompt": "p", "suffix": "s"}, "<prefix>p</prefix><suffix>s</suffix>", "FIM"),
    ],
)
def test_completion_prompts(body, text, system):
    turn = completions.from_completion_request(
        completions.CompletionRequest.model_validate({"model": "sonnet", **body})
    )
    assert turn.messages[0].text == text
    assert (turn.system is not None) == (system is not None)


def test_completion_object_validates_as_the_sdks_completion():
    body = completions.to_completion(
        [TextDelta("x"), TurnDone("max_tokens", Usage(2, 1))], model="m", completion_id="cmpl-1", created=1
    )
    completion = Completion.model_validate(body)
    assert completion.choices[0].finish_reason == "length" and completion.usage.total_tokens == 3
