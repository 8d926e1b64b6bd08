"""Reading a JSON request body safely: parse, bound its nesting, refuse lone surrogates, note unknown fields.

Every scoring route reads its body through :func:`read_body`, so hostile input fails the same
way everywhere: a 400 naming the problem instead of a RecursionError or a tokenizer's TypeError
(a lone UTF-16 surrogate cannot be encoded, so it would otherwise fail deep in the engine).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from rankserve.server.errors import APIError

MAX_DEPTH = 32
"""Deepest nesting a body may have; every real request is 3 levels deep (object, list, object)."""

_SURROGATE = re.compile("[\ud800-\udfff]")


async def read_json(request: Any) -> Any:
    """The parsed body, or a 400 for malformed JSON, nesting deeper than :data:`MAX_DEPTH` or a surrogate."""
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"malformed JSON body: {exc}") from exc
    except RecursionError as exc:
        raise APIError(400, f"JSON body is nested too deeply (more than {MAX_DEPTH} levels)") from exc
    check_tree(data)
    return data


def check_tree(data: Any) -> None:
    """Walk the parsed body once (iteratively: no recursion to exhaust) for depth and surrogates."""
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise APIError(400, f"{path or 'body'} contains an unpaired surrogate (invalid Unicode)")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise APIError(400, f"JSON body is nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    raise APIError(400, "a field name contains an unpaired surrogate (invalid Unicode)")
                stack.append((item, f"{path}.{key}" if path else key, depth + 1))
        else:
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))


def validate(model: type[BaseModel], data: Any) -> Any:
    """``model`` from ``data``; pydantic's errors become the usual 422 naming each field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from exc


def unknown_fields(model: type[BaseModel], data: Any, also_known: Iterable[str] = ()) -> list[str]:
    """Top-level fields of ``data`` that ``model`` does not read (they would be silently ignored)."""
    if not isinstance(data, dict):
        return []
    known = set(also_known)
    for name, field in model.model_fields.items():
        known.add(name)
        if field.alias:
            known.add(field.alias)
    return sorted(k for k in data if k not in known)


def ignored_warning(fields: list[str]) -> str:
    """The one message a response and the log carry for ignored fields."""
    names = ", ".join(repr(f) for f in fields)
    return f"unknown field{'s' if len(fields) > 1 else ''} {names} ignored"
