"""OpenAPI request-body declarations for routes that parse their bodies themselves.

Routes read and validate JSON by hand (for size limits and errors in each protocol's shape),
so FastAPI cannot see their body models; this puts the models back into ``/openapi.json``,
which clients, documentation and the fuzz tests read.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inline_refs(definitions[reference.split("/")[-1]], definitions)
        return {key: _inline_refs(value, definitions) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(item, definitions) for item in node]
    return node


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route whose JSON body is ``model`` (references inlined)."""
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_refs(schema, schema.get("$defs", {}))}},
        }
    }
