"""A cross-encoder tokenizer's pair layout, applied to token ids.

``tokenizer(query, document)`` tokenizes each text on its own, then wraps the two id lists in
fixed special tokens: ``[CLS] A [SEP] B [SEP]`` for BERT and ModernBERT, ``<s> A </s></s> B </s>``
for XLM-R, with token types where the model has them. Truncation must cut the document's *ids*
and wrap the kept ids the same way: decoding a window back to text and tokenizing it again does
not give the same ids (WordPiece, BPE and Unigram pieces merge differently at the cut and
around spaces), so the model would score other tokens than the card's code feeds it.

transformers 5's tokenizers no longer offer ``build_inputs_with_special_tokens`` or
``prepare_for_model``, and the Rust post-processor only takes its own ``Encoding`` objects, so
the layout is read off the tokenizer once, from a probe pair, and checked on a second one.
"""

from __future__ import annotations

from dataclasses import dataclass

from rankserve.errors import ModelLoadError

PROBES = (("a", "b"), ("a query of several words", "a document, with some more words. 12"))


def plain_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text alone, without special tokens (what the pair's A or B part holds)."""
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


@dataclass(frozen=True)
class PairTemplate:
    """Special tokens before, between and after the two sequences, with every position's token type."""

    before: tuple[int, ...]
    between: tuple[int, ...]
    after: tuple[int, ...]
    before_types: tuple[int, ...] | None
    between_types: tuple[int, ...] | None
    after_types: tuple[int, ...] | None
    first_type: int = 0
    second_type: int = 1

    @property
    def num_special(self) -> int:
        return len(self.before) + len(self.between) + len(self.after)

    @property
    def has_types(self) -> bool:
        return self.before_types is not None

    def build(self, first: list[int], second: list[int]) -> tuple[list[int], list[int] | None]:
        """The pair's input ids and token type ids (None where the model takes none)."""
        ids = [*self.before, *first, *self.between, *second, *self.after]
        if not self.has_types:
            return ids, None
        types = [
            *self.before_types,
            *[self.first_type] * len(first),
            *self.between_types,
            *[self.second_type] * len(second),
            *self.after_types,
        ]
        return ids, types

    @classmethod
    def from_tokenizer(cls, tokenizer) -> PairTemplate:
        """Read the layout off ``tokenizer(a, b)``; refuse a tokenizer whose pairs are not fixed wrappers."""
        (a, b), check = PROBES[0], PROBES[1]
        first, second = plain_ids(tokenizer, [a, b])
        enc = tokenizer(a, b, return_special_tokens_mask=True)
        ids, mask, types = enc["input_ids"], enc["special_tokens_mask"], enc.get("token_type_ids")
        try:
            start = mask.index(0)  # the first sequence starts after the leading special tokens
            mid = start + len(first)
            end = mid + mask[mid:].index(0)
        except ValueError:
            raise ModelLoadError(f"cannot read the pair layout of {type(tokenizer).__name__}: {ids}") from None
        stop = end + len(second)
        if ids[start:mid] != first or ids[end:stop] != second:
            raise ModelLoadError(f"cannot read the pair layout of {type(tokenizer).__name__}: {ids}")
        template = cls(
            before=tuple(ids[:start]),
            between=tuple(ids[mid:end]),
            after=tuple(ids[stop:]),
            before_types=tuple(types[:start]) if types is not None else None,
            between_types=tuple(types[mid:end]) if types is not None else None,
            after_types=tuple(types[stop:]) if types is not None else None,
            first_type=types[start] if types is not None else 0,
            second_type=types[end] if types is not None else 1,
        )
        q, d = plain_ids(tokenizer, list(check))
        want = tokenizer(*check)
        got_ids, got_types = template.build(q, d)
        if got_ids != want["input_ids"] or got_types != want.get("token_type_ids"):
            raise ModelLoadError(
                f"the pair layout of {type(tokenizer).__name__} is not [special] A [special] B [special]; "
                "RankServe cannot truncate its pairs token by token"
            )
        return template
