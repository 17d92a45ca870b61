"""The plan of a turn, made before any process is used: who asks, the launch profile, the
conversation with remembered thinking put back, what a process must hold and its prompt,
and the account whose process already holds it."""

from __future__ import annotations

from dataclasses import dataclass

from ..cli.profile import Profile
from ..core.caller import Caller
from ..core.messages import Message
from ..core.turn import TurnRequest


@dataclass(frozen=True)
class TurnPlan:
    """``profile`` has no account yet (``BridgeEngine.stream`` tries the caller's accounts in
    order); ``history`` and ``prompt`` are what the process must hold and is sent: on workers
    nothing (the tap writes ``messages``), else every message but the last and the last (or,
    after tool results, the whole conversation and no prompt: the CLI continues by itself);
    ``holder`` the account whose held process has exactly that history (None on workers)."""

    request: TurnRequest
    caller: Caller
    profile: Profile
    messages: list[Message]
    history: tuple[Message, ...]
    prompt: Message | None
    holder: str | None
