"""Fitting a document's tokens into the per-pair token budget.

Policies (the prompt prefix and suffix are never cut; that is the caller's job):

- ``head``: keep the first tokens. Same as the official recipe's ``truncation=True``.
- ``head_tail`` (default): keep the start and the last ~1,000 characters' worth of tokens,
  so a document's conclusion survives.
- ``tail``: keep the last tokens (TEI's ``truncation_direction: Left``).
- ``chunks``: split into overlapping windows that each fit; nothing is dropped and the
  document's score is its best window's.
"""

from __future__ import annotations

from dataclasses import dataclass

from rankserve.errors import InvalidInputError

TRUNCATION_POLICIES: tuple[str, ...] = ("head", "head_tail", "tail", "chunks")
DEFAULT_TRUNCATION = "head_tail"

TAIL_CHARS = 1000
"""How much of a document's end ``head_tail`` keeps (in characters, converted to tokens)."""


@dataclass(frozen=True)
class Fitted:
    windows: list[list[int]]
    truncated: bool


def check_policy(policy: str) -> str:
    if policy not in TRUNCATION_POLICIES:
        raise InvalidInputError(
            f"unknown truncation policy {policy!r}; choose one of: {', '.join(TRUNCATION_POLICIES)}"
        )
    return policy


def longest_first(first: int, second: int, room: int) -> tuple[int, int]:
    """Tokens each sequence of a pair keeps when both must fit ``room`` (special tokens excluded).

    The rule of Hugging Face tokenizers' ``longest_first`` strategy, which the encoder
    cross-encoders' cards select with ``truncation=True`` (``truncate_encodings`` in the
    ``tokenizers`` crate, ``src/utils/truncation.rs``): the shorter sequence stays whole and the
    longer one takes the rest; when even the shorter one exceeds half the room, both get half
    (the longer one the odd token). A short query thus keeps every token and only the document
    is cut, as ``only_second`` would.
    """
    if first + second <= room:
        return first, second
    short = min(first, second)
    if 2 * short <= room:  # the shorter one fits in half: whole, the longer one takes the rest
        keep_short, keep_long = short, room - short
    else:
        keep_short, keep_long = room // 2, room // 2 + room % 2
    return (keep_long, keep_short) if first > second else (keep_short, keep_long)


def chunk_overlap(budget: int) -> int:
    """Overlap between neighbouring windows: a quarter of the window, at most 256 tokens."""
    return min(budget // 4, 256)


def fit(ids: list[int], budget: int, policy: str, tail_tokens: int | None = None) -> Fitted:
    """Fit ``ids`` into ``budget`` tokens under ``policy``.

    ``tail_tokens`` is how many tokens the last :data:`TAIL_CHARS` characters take; only
    ``head_tail`` uses it (defaults to a quarter of the budget).
    """
    check_policy(policy)
    if budget < 1:
        raise InvalidInputError("no room left for the document: raise max_length or shorten the query")
    if len(ids) <= budget:
        return Fitted([list(ids)], False)
    if policy == "head":
        return Fitted([list(ids[:budget])], True)
    if policy == "tail":
        return Fitted([list(ids[-budget:])], True)
    if policy == "head_tail":
        tail = budget // 4 if tail_tokens is None else tail_tokens
        tail = max(0, min(tail, budget // 2))
        head = budget - tail
        return Fitted([list(ids[:head]) + (list(ids[-tail:]) if tail else [])], True)
    # chunks: windows of `budget` tokens, each starting `stride` after the previous one;
    # the last window is aligned to the end so it is full and covers the final token.
    stride = max(1, budget - chunk_overlap(budget))
    starts = list(range(0, len(ids) - budget, stride)) + [len(ids) - budget]
    return Fitted([list(ids[s : s + budget]) for s in starts], False)
