"""The per-key checks a turn passes before it starts (installed on the turn pipeline,
``api/pipeline``, by ``api/app.py``): the key may ask for this model, and its limits leave room
for one more turn. The concurrency slot is held for the turn's length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..accounts.budgets import TokenBudgets
from ..accounts.limits import KeyLimits
from ..core.caller import Caller
from ..errors import BridgeError, ModelNotAllowed

if TYPE_CHECKING:
    from .pipeline import TurnCheck, TurnCheckContext


def key_check(
    limits: KeyLimits,
    resolve: Callable[[str | None], str],
    default_model: str,
    budgets: TokenBudgets | None = None,
) -> TurnCheck:
    """The check the pipeline runs for every turn: the caller's model list, its token budgets,
    then its limits."""

    async def check(context: TurnCheckContext) -> None:
        caller = context.turn.caller
        if caller is None or caller.name is None:
            return  # the anonymous caller (no keys): no limits
        check_model(caller, context.turn.model or default_model, resolve)
        if budgets is not None:
            budgets.check(caller)
        context.releases.append(limits.admit(caller).release)

    return check


def check_model(caller: Caller, requested: str, resolve: Callable[[str | None], str]) -> None:
    """Raise ModelNotAllowed (403) unless ``requested`` is one of the caller's ``models``: by
    name, or by what both resolve to (``sonnet`` allows the id it stands for, and the reverse)."""
    if caller.models is None:
        return
    wanted = requested.strip().lower()
    if any(wanted == allowed.lower() for allowed in caller.models):
        return
    try:
        resolved = resolve(requested)
    except BridgeError:
        resolved = None
    for allowed in caller.models:
        try:
            if resolved is not None and resolve(allowed) == resolved:
                return
        except BridgeError:
            continue
    raise ModelNotAllowed(
        f"The key {caller.label!r} may not use the model {requested!r}; it may use {', '.join(caller.models)}.",
        param="model",
    )
