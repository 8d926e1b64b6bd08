"""Listwise prompts and windows for jina-reranker-v3 ("last but not late" interaction).

The model reads the query and a *window* of documents in ONE causal sequence: a marker token
after each document and one after the query (which comes last, after every document), and the
last hidden state at those markers, projected by a small MLP, is each text's embedding. A
document's score is the cosine between its embedding and the query's, so it depends on the other
documents of its window (they are in its context) and, across windows, on all of them: the query
embeddings of the windows are averaged, each weighted by its window's best ``(1 + cosine) / 2``,
and every document is scored against that average.

This module builds the windows and their token ids (no torch, like :mod:`rankserve.engine.prepare`);
:mod:`rankserve.engine.listwise_model` runs them. The recipe follows the checkpoint's own remote code,
``modeling.py`` of https://huggingface.co/jinaai/jina-reranker-v3 (``format_docs_prompts_func``,
``sanitize_input``, ``_truncate_texts`` and ``rerank``):

- each document is cut to 2048 tokens and the query to 512 (the cut text is the decoded tokens);
- windows follow input order: a window closes once it holds 125 documents or the room left,
  ``tokenizer.model_max_length - 2 * query tokens`` minus its documents' tokens, is at most 2048;
- passages are numbered from 0 in each window; the marker strings are deleted from user text;
- the card's ``rerank`` passes no instruction, so Qwen3-Reranker's default instruction (what the
  server's ``default`` preset sends when a caller names none) means none here; any other instruction
  fills the prompt's ``<instruct>`` slot.

Each document becomes one :class:`Pair` holding its slice of the window's token ids (up to and
including its marker; the last one also holds the query and the assistant suffix), so a window is
its pairs' tokens concatenated and token counts add up. All pairs of a request form one
:class:`ListGroup`: the batcher takes it whole and the engine scores it in one call.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from rankserve.engine.families import RAW
from rankserve.engine.prepare import validate
from rankserve.engine.types import ListGroup, Pair, PreparedRequest, ScoreRequest
from rankserve.errors import InvalidInputError, ModelLoadError
from rankserve.prompts import DEFAULT_INSTRUCTION

DOC_MARKER = "<|embed_token|>"
QUERY_MARKER = "<|rerank_token|>"
WINDOW_DOCUMENTS = 125
MAX_QUERY_TOKENS = 512
MAX_DOC_TOKENS = 2048

SYSTEM = (
    "<|im_start|>system\n"
    "You are a search relevance expert who can determine a ranking of the passages based on how relevant they are "
    "to the query. If the query is a question, how relevant a passage is depends on how well it answers the "
    "question. If not, try to analyze the intent of the query and assess how well each passage satisfies the "
    "intent. If an instruction is provided, you should follow the instruction when determining the ranking."
    "<|im_end|>\n<|im_start|>user\n"
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def strip_markers(text: str) -> str:
    """User text without the marker strings (the card deletes them, once each, in this order)."""
    return text.replace(QUERY_MARKER, "").replace(DOC_MARKER, "")


def window_prompt(query: str, documents: Sequence[str], instruction: str | None = None) -> str:
    """The prompt text of one window: header with the query, numbered passages, then the query again."""
    query = strip_markers(query)
    header = (
        f"I will provide you with {len(documents)} passages, each indicated by a numerical identifier. "
        f"Rank the passages based on their relevance to query: {query}\n"
    )
    if instruction:
        header += f"<instruct>\n{instruction}\n</instruct>\n"
    passages = "\n".join(
        f'<passage id="{i}">\n{strip_markers(doc)}{DOC_MARKER}\n</passage>' for i, doc in enumerate(documents)
    )
    return f"{SYSTEM}{header}{passages}\n<query>\n{query}{QUERY_MARKER}\n</query>{SUFFIX}"


def plan_windows(doc_tokens: Sequence[int], query_tokens: int, context: int, max_doc: int) -> list[list[int]]:
    """Document indices of each window, in input order (the card's ``rerank`` loop)."""
    windows: list[list[int]] = []
    current: list[int] = []
    room = context - 2 * query_tokens
    for index, length in enumerate(doc_tokens):
        current.append(index)
        room -= length
        if len(current) >= WINDOW_DOCUMENTS or room <= max_doc:
            windows.append(current)
            current = []
            room = context - 2 * query_tokens
    if current:
        windows.append(current)
    return windows


def marker_ids(tokenizer) -> tuple[int, int]:
    """The (document, query) marker ids; a clear error where the tokenizer lacks them as single tokens."""
    ids = []
    for marker in (DOC_MARKER, QUERY_MARKER):
        encoded = tokenizer(marker, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1 or encoded[0] == tokenizer.unk_token_id:
            raise ModelLoadError(f"the tokenizer has no single token {marker!r}: not a jina-reranker-v3 tokenizer")
        ids.append(encoded[0])
    return ids[0], ids[1]


class ListwisePairBuilder:
    """Turns a request into one group of per-document pairs (see the module docstring)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.doc_id, self.query_id = marker_ids(tokenizer)
        self.context = int(tokenizer.model_max_length)

    def _cut(self, text: str, limit: int) -> tuple[str, int, bool]:
        """The text as the card keeps it, its token count, and whether anything was cut."""
        ids = self.tokenizer(text, truncation=True, max_length=limit)["input_ids"]
        if len(ids) < limit:
            return text, len(ids), False
        kept = self.tokenizer.decode(ids)
        return kept, len(ids), kept != text

    def prepare(self, request: ScoreRequest, on_pairs=None) -> PreparedRequest:
        """Validate, cut, window and tokenize. ``ScoreRequest.max_length`` lowers the 2048-token document cap."""
        validate(request)
        max_doc = MAX_DOC_TOKENS if request.max_length is None else max(1, min(MAX_DOC_TOKENS, request.max_length))
        query, query_tokens, _ = self._cut(request.query, MAX_QUERY_TOKENS)
        cut = [self._cut(doc, max_doc) for doc in request.documents]
        group = ListGroup(uuid.uuid4().hex, len(cut))
        pairs: list[Pair] = []
        for number, window in enumerate(plan_windows([c[1] for c in cut], query_tokens, self.context, max_doc)):
            instruction = None if request.instruction == DEFAULT_INSTRUCTION else request.instruction
            prompt = window_prompt(query, [cut[i][0] for i in window], instruction)
            ids = self.tokenizer(prompt)["input_ids"]
            ends = [k for k, t in enumerate(ids) if t == self.doc_id]
            if len(ends) != len(window) or ids.count(self.query_id) != 1:
                raise InvalidInputError(
                    f"documents {window[0]}-{window[-1]} or the query spell out the model's marker tokens "
                    f"({DOC_MARKER}, {QUERY_MARKER}) in a way that survives their removal"
                )
            starts = [0, *(e + 1 for e in ends[:-1])]
            stops = [*(e + 1 for e in ends[:-1]), len(ids)]
            for index, start, stop in zip(window, starts, stops):
                pairs.append(Pair(index, number, (), ids[start:stop], group=group))
        prepared = PreparedRequest(request, pairs, [c[2] for c in cut], activation=RAW)
        if on_pairs is not None:
            on_pairs(pairs)
        return prepared
