"""The OpenAPI document: FastAPI's, made exact where the routes parse their bodies by hand.

The scoring routes read their JSON themselves (see :mod:`rankserve.server.bodies`), so their
request bodies are declared here from the pydantic models, with the constraints the server
enforces (non-empty query and lists, at most ``--max-documents`` documents, the served model's
name). Every error the server can answer is documented with the one error body shape, and the
bearer scheme makes Swagger's "Authorize" button send the API key.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from rankserve.engine.validation import NON_BLANK_PATTERN
from rankserve.server.schemas.cohere import CohereV2Request, RerankRequest, RerankResponse
from rankserve.server.schemas.simple import SimpleRerankRequest, SimpleRerankResponse
from rankserve.server.schemas.tei import TEIError
from rankserve.server.schemas.vllm import ScoreRequestBody

REF = "#/components/schemas/{model}"
BODY_MODELS: tuple[type[BaseModel], ...] = (SimpleRerankRequest, RerankRequest, CohereV2Request, ScoreRequestBody)

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": "integer"},
            },
        }
    },
}

SCORING_ERRORS = {
    "400": "Invalid input: empty or blank texts, unknown preset, wrong model, malformed or too deeply nested JSON, "
    "an unpaired surrogate, both `texts` and `documents`",
    "408": "The body did not arrive within --body-timeout",
    "413": "Too large: body over --max-request-bytes, more than --max-documents documents, "
    "or more than --max-request-tokens tokens",
    "404": "`model` is not the served model",
    "422": "A required field is missing or a field has the wrong type or range",
    "500": "Scoring failed",
    "503": "Model loading or server busy (see Retry-After)",
    "504": "Not answered within --request-timeout",
}
COMMON_ERRORS = {"401": "Missing or wrong API key (when the server has one)"}


def build_openapi(app: FastAPI, limits: dict[str, Any], *, auth: bool) -> dict[str, Any]:
    """The schema for this app's settings.

    ``limits``: ``model_names`` (the accepted ``model`` values), ``presets`` (names), and ``max_documents``.
    """
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    models = components.setdefault("schemas", {})
    for model, mode in [(m, "validation") for m in BODY_MODELS] + [
        (SimpleRerankResponse, "serialization"),
        (RerankResponse, "serialization"),
    ]:
        body = model.model_json_schema(ref_template=REF, mode=mode)
        models.update(body.pop("$defs", {}))
        models[model.__name__] = body
    for name in ("SimpleRerankRequest", "RerankRequest", "CohereV2Request", "ScoreRequestBody"):
        _constrain(models[name], limits)
    _text(models["DocumentObject"]["properties"]["text"])
    models["ErrorResponse"] = copy.deepcopy(ERROR_SCHEMA)
    models["TEIError"] = TEIError.model_json_schema()
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer", "description": "--api-key"}}
    for path, ops in schema.get("paths", {}).items():
        for op in ops.values():
            _finish_operation(path, op, auth, limits)
            for param in op.get("parameters", []):
                if param.get("name") == "model_id":  # the only ids that exist
                    param["schema"] = {"type": "string", "enum": limits["model_names"]}
    app.openapi_schema = schema
    return schema


def _finish_operation(path: str, op: dict[str, Any], auth: bool, limits: dict[str, Any]) -> None:
    names = op.pop("x-rankserve-body", None)
    responses = op.setdefault("responses", {})
    if names:
        refs = [{"$ref": REF.format(model=n)} for n in names]
        body = refs[0] if len(refs) == 1 else {"oneOf": refs}
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
        if path == "/rerank":
            out = [{"$ref": REF.format(model=m)} for m in ("SimpleRerankResponse", "RerankResponse")]
            responses["200"]["content"] = {"application/json": {"schema": {"oneOf": out}}}
        errors = dict(SCORING_ERRORS)
    elif path == "/tei/rerank":
        _constrain(op["requestBody"]["content"]["application/json"]["schema"], limits)
        errors = dict(SCORING_ERRORS)
    elif path in ("/health", "/tei/health"):
        errors = {"503": "Model loading or failed to load"}
    elif "{" in path:
        errors = {"404": "No such model"}
    else:
        errors = {}
    responses.pop("422", None) if not names else None
    if auth and path != "/health":
        errors.update(COMMON_ERRORS)
        op["security"] = [{"bearer": []}]
    error_body: dict[str, Any] = {"$ref": REF.format(model="ErrorResponse")}
    if path.startswith("/tei/"):  # TEI's own error body, or ours where middleware answers first (401, 408, 413)
        error_body = {"anyOf": [{"$ref": REF.format(model="TEIError")}, error_body]}
    for code, text in errors.items():
        responses[code] = {"description": text, "content": {"application/json": {"schema": error_body}}}
    if path == "/tei/health":
        responses["200"] = {"description": "The model is loaded (empty body, as TEI answers)"}
    if path == "/metrics":
        responses["200"] = {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }


def _text(schema: dict[str, Any]) -> None:
    schema.update({"minLength": 1, "pattern": NON_BLANK_PATTERN})


def _texts(prop: dict[str, Any], max_documents: int) -> None:
    """Each string (or list of strings) branch of a text field: non-blank, lists 1..max_documents long."""
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") == "string":
            _text(branch)
        elif branch.get("type") == "array":
            branch.update({"minItems": 1, "maxItems": max_documents})
            items = branch.setdefault("items", {})
            for item in items.get("anyOf", [items]):
                if item.get("type") == "string":
                    _text(item)


def _constrain(schema: dict[str, Any], limits: dict[str, Any]) -> None:
    """The limits the server enforces by hand, written into a request schema."""
    props = schema.get("properties", {})
    if "query" in props:
        _text(props["query"])
    for name in ("texts", "documents", "text_1", "text_2", "queries"):
        if name in props:
            _texts(props[name], limits["max_documents"])
    if "model" in props:
        props["model"] = {"anyOf": [{"type": "string", "enum": limits["model_names"]}, {"type": "null"}]}
    if "preset" in props:
        props["preset"] = {"anyOf": [{"type": "string", "enum": limits["presets"]}, {"type": "null"}]}
    if "truncate_prompt_tokens" in props:  # vLLM's meaning: -1 (the server's budget) or a positive count
        props["truncate_prompt_tokens"]["anyOf"] = [
            {"type": "integer", "enum": [-1]},
            {"type": "integer", "minimum": 1},
            {"type": "null"},
        ]
    if "text_1" in props:  # each side under one of its two names, and not null
        sides = [("text_1", "queries"), ("text_2", "documents")]
        given = {"type": ["string", "array"]}
        schema["allOf"] = [
            rule
            for names in sides
            for rule in (
                {"anyOf": [{"required": [n], "properties": {n: given}} for n in names]},
                {"not": {"required": list(names), "properties": {n: given for n in names}}},
            )
        ]
