"""The Jina / Cohere v1 / vLLM rerank dialect (``/rerank`` with ``documents``, ``/v1/rerank``) and
Cohere v2 (``/v2/rerank``).

Documents may be strings or ``{"text": ...}`` objects; the echoed document is always the
caller's original text, never the templated prompt the model read.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator
from pydantic_core import PydanticCustomError

from rankserve.server.schemas.common import InstructionFields, Usage, count


class DocumentObject(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str


class DocumentText(BaseModel):
    text: str


class RerankRequest(InstructionFields):
    query: str = Field(..., examples=["服务器CPU使用率持续100%怎么办"])
    documents: list[str | DocumentObject] = Field(..., description='Strings or {"text": ...} objects.')
    # strict: JSON true/false or "3" is not a count (lax mode would read true as 1)
    top_n: count(0) | None = Field(
        None, description="Return only the best N results; 0 or absent: all (vLLM's meaning of 0)."
    )
    return_documents: StrictBool = Field(True, description="Echo each document's text in the results.")
    truncate_prompt_tokens: count(-1) | None = Field(
        None, description="vLLM: cap each (query, document) prompt at this many tokens; -1: the server's."
    )

    @field_validator("documents", mode="before")
    @classmethod
    def _documents_shape(cls, value: Any) -> Any:
        """One clear message instead of pydantic's per-union-member errors."""
        if not isinstance(value, list):
            # no context given, so pydantic does not format the template: braces are literal
            raise PydanticCustomError("list_type", 'must be a list of strings or {"text": str} objects')
        for i, item in enumerate(value):
            ok = isinstance(item, str) or (isinstance(item, dict) and isinstance(item.get("text"), str))
            if not ok:
                raise PydanticCustomError(
                    "document_type",
                    "item {index} must be a string or an object with a string 'text' (got {kind})",
                    {"index": i, "kind": type(item).__name__},
                )
        return value

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: DocumentText | None = None


class Warnings(BaseModel):
    warnings: list[str] = Field(..., description="What the server ignored, e.g. unknown fields.")


class RerankResponse(BaseModel):
    id: str
    model: str
    usage: Usage
    results: list[RerankResult]
    meta: Warnings | None = Field(None, description="Present only when something in the request was ignored.")


class CohereV2Request(RerankRequest):
    return_documents: StrictBool = Field(False, description="Echo each document's text (off by default in v2).")
    max_tokens_per_doc: count(1) | None = Field(
        None, description="Cap each (query, document) prompt at this many tokens (within --max-length)."
    )


class ApiVersion(BaseModel):
    version: str = "2"


class BilledUnits(BaseModel):
    search_units: int = 1


class Tokens(BaseModel):
    input_tokens: int
    output_tokens: int = 0


class CohereMeta(BaseModel):
    api_version: ApiVersion = ApiVersion()
    billed_units: BilledUnits = BilledUnits()
    tokens: Tokens
    warnings: list[str] | None = Field(None, description="Present only when something in the request was ignored.")


class CohereV2Response(BaseModel):
    id: str
    model: str
    results: list[RerankResult]
    meta: CohereMeta
