"""The per-key checks a turn passes before it starts (run by the turn pipeline, api/pipeline):
the key may ask for this model, and its limits leave room for one more turn.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.caller import Caller
from ..errors import BridgeError, ModelNotAllowed


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
