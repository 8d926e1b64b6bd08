"""Where the repository and the optional ``../shared`` folder (real tokenizer, configs, data) are."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
