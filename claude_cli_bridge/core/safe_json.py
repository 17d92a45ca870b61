"""Decoding caller JSON without trusting it: bounded depth, bounded numbers, valid text.

Every JSON document a caller sends (request bodies, tool-call arguments inside them) goes
through ``loads``. What it refuses would otherwise crash a handler far from the request:

* nesting deeper than ``MAX_DEPTH`` (Python's decoder and every recursive walk after it
  would hit the recursion limit);
* integers longer than Python's int-conversion limit (4300 digits) and the non-standard
  constants ``NaN``/``Infinity`` and floats beyond the double range (not JSON; they break re-encoding for the CLI);
* strings holding a NUL character or a lone UTF-16 surrogate: neither can travel to the
  CLI (argv, environment, UTF-8 pipes) unchanged, so they are refused rather than altered.

Each refusal is an ``InvalidRequest`` that names what was wrong and where.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidRequest

MAX_DEPTH = 100


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:20]} is too large")
    return value


def loads(text: str | bytes | bytearray, where: str = "The request body") -> Any:
    """Decode ``text``; raises InvalidRequest for anything this module's docstring refuses."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidRequest(f"{where} is nested too deeply (more than {MAX_DEPTH} levels).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{where} is not valid JSON: {exc}.") from None
    except ValueError as exc:  # over-long integers, NaN/Infinity
        raise InvalidRequest(f"{where} is not acceptable JSON: {exc}.") from None
    check_value(value, where)
    return value


def check_value(value: Any, where: str = "The request body") -> None:
    """Walk a decoded value iteratively: depth within MAX_DEPTH, every string valid text."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            check_text(node, _located(where, path))
        elif isinstance(node, (dict, list)):
            if len(path) >= MAX_DEPTH:
                raise InvalidRequest(f"{where} is nested too deeply (more than {MAX_DEPTH} levels).")
            if isinstance(node, dict):
                for key, item in node.items():
                    check_text(key, _located(where, path))
                    stack.append((item, (*path, key)))
            else:
                stack.extend((item, (*path, index)) for index, item in enumerate(node))


def _located(where: str, path: tuple[str | int, ...]) -> str:
    if not path:
        return where
    dotted = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")
    return f"{where} at '{dotted}'"


def check_text(text: str, where: str = "The request") -> None:
    """Refuse a NUL character or a lone surrogate (the rest of Unicode passes untouched)."""
    if text.isascii():
        if "\x00" in text:
            raise InvalidRequest(f"{where} contains a NUL character, which cannot be passed to the model.")
        return
    if "\x00" in text:
        raise InvalidRequest(f"{where} contains a NUL character, which cannot be passed to the model.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{where} contains a lone UTF-16 surrogate, which is not valid Unicode text.") from None
