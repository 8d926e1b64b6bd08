"""Fields every scoring dialect shares: model name, instruction/preset, truncation policy."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge
from pydantic import BaseModel, BeforeValidator, Field, StrictBool
from pydantic_core import PydanticCustomError

Truncation = Literal["head", "head_tail", "chunks"]


def _whole_number(value: Any) -> Any:
    """A count as JSON Schema's "integer" means it: 3 or 3.0, never true or "3"."""
    if isinstance(value, bool) or isinstance(value, str):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def count(minimum: int) -> Any:
    """An integer type >= ``minimum`` that refuses booleans and strings (lax pydantic reads true as 1).

    The bound comes before the validator so that the JSON schema says ``minimum``.
    """
    return Annotated[int, Ge(minimum), BeforeValidator(_whole_number)]


class InstructionFields(BaseModel):
    """How to score: free-text instruction (wins) or a named preset, and the truncation policy."""

    model: str | None = Field(None, description="Optional; must match the served model name when given.")
    instruction: str | None = Field(None, description="Free-text task instruction; wins over `preset`.")
    preset: str | None = Field(None, description="Name of an instruction preset (see GET /v1/presets).")
    truncation: Truncation | None = Field(
        None,
        description="Over-long documents: head, head_tail (default) or chunks (score windows, take max).",
    )
    raw_scores: StrictBool = Field(
        False,
        description="Return the model head's raw value (a logit, see GET /v1/models) instead of the served score.",
    )


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int
