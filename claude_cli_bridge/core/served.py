"""The one list of models this server serves: Claude's catalogue (``core.models.CATALOG``),
the operator's ``MODEL_ALIASES``, then the embedding models. OpenAI's ``/v1/models``, Ollama's
``/api/tags`` and the console's ``models`` command all list it, each in its own shape."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from .models import CATALOG, ModelInfo

Kind = Literal["claude", "alias", "embedding"]


@dataclass(frozen=True)
class ServedModel:
    """One served name. ``info`` is the catalogue entry of a Claude model; ``target`` the
    model an alias names (``gpt-4o`` -> ``sonnet``). ``created`` is a fixed date: ids are stable."""

    id: str
    kind: Kind
    created: int
    info: ModelInfo | None = None
    target: str | None = None


def served_models(aliases: Mapping[str, str] = {}, embedding_names: Iterable[str] = ()) -> list[ServedModel]:
    """Every served model id, in listing order (the default arguments are never mutated)."""
    created = CATALOG[0].created
    models = [ServedModel(info.id, "claude", info.created, info=info) for info in CATALOG]
    models += [ServedModel(name, "alias", created, target=target) for name, target in aliases.items()]
    models += [ServedModel(name, "embedding", created) for name in embedding_names]
    return models
