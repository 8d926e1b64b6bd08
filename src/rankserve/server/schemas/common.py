"""Fields every scoring dialect shares: model name, instruction/preset, truncation policy."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Truncation = Literal["head", "head_tail", "chunks"]


class InstructionFields(BaseModel):
    """How to score: free-text instruction (wins) or a named preset, and the truncation policy."""

    model: str | None = Field(None, description="Optional; must match the served model name when given.")
    instruction: str | None = Field(None, description="Free-text task instruction; wins over `preset`.")
    preset: str | None = Field(None, description="Name of an instruction preset (see GET /v1/presets).")
    truncation: Truncation | None = Field(
        None,
        description="Over-long documents: head, head_tail (default) or chunks (score windows, take max).",
    )
    raw_scores: bool = Field(
        False,
        description="Return the model head's raw value (a logit, see GET /v1/models) instead of the served score.",
    )


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int
