"""Which prompt an embedding model wants on queries and which on documents.

Instruction-aware embedders are trained asymmetrically: Qwen3-Embedding sees an instruction before
every query and nothing before documents, e5 sees ``query: `` / ``passage: ``, BGE English v1.5 an
instruction on queries only. Encoding both sides the same way silently costs recall, so the index
records the exact strings it used and search applies the same ones.

Resolution, per side, first match wins:

1. an explicit override (``--query-prompt`` / ``--document-prompt``; ``""`` means none);
2. the model's own ``prompts`` (``config_sentence_transformers.json``), chosen the way
   sentence-transformers' ``encode_query`` / ``encode_document`` choose them: ``"query"`` for
   queries, the first of ``"document"``, ``"passage"``, ``"corpus"`` for documents, and
   ``default_prompt_name`` where the model names one and the side has no prompt of its own;
3. for a model that ships no non-empty prompt, the documented prompts of its family (by name);
4. no prompt.

sentence-transformers applies a prompt by plain concatenation (``prompt + text``), so each prompt
carries its own trailing space or newline.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")  # the order of ST's encode_document

QWEN3_EMBEDDING_TASK = "Given a web search query, retrieve relevant passages that answer the query"

# (pattern on the model name, family, query prompt, document prompt). Sources:
# - Qwen3-Embedding: model card https://huggingface.co/Qwen/Qwen3-Embedding-0.6B, ``get_detailed_instruct``
#   returns f"Instruct: {task_description}\nQuery:{query}" (no space after "Query:"); documents get no
#   instruction; the card's default task is QWEN3_EMBEDDING_TASK.
# - e5 (v1/v2, multilingual): model card https://huggingface.co/intfloat/e5-base-v2 -- "query: " and
#   "passage: " prefixes on every input. The *-instruct e5 variants use a different, task-specific format and
#   are not matched here (give --query-prompt).
# - BGE English v1.5: FlagOpen/FlagEmbedding README, "Query instruction for retrieval" column
#   (https://github.com/FlagOpen/FlagEmbedding) -- prepended to short queries only, passages unprefixed.
KNOWN_FAMILIES: tuple[tuple[re.Pattern[str], str, str, str], ...] = (
    (
        re.compile(r"qwen3-embedding", re.IGNORECASE),
        "qwen3-embedding",
        f"Instruct: {QWEN3_EMBEDDING_TASK}\nQuery:",
        "",
    ),
    (re.compile(r"^(multilingual-)?e5-(?!.*instruct)", re.IGNORECASE), "e5", "query: ", "passage: "),
    (
        re.compile(r"bge-(small|base|large)-en-v1\.5", re.IGNORECASE),
        "bge-en-v1.5",
        "Represent this sentence for searching relevant passages: ",
        "",
    ),
)


@dataclass(frozen=True)
class EmbeddingPrompts:
    """The strings prepended to queries and to documents, and where they came from.

    ``source`` is ``override``, ``model`` (its own ``prompts``), ``family:<name>`` or ``none``."""

    query: str = ""
    document: str = ""
    source: str = "none"

    def to_meta(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> EmbeddingPrompts:
        return cls(str(meta.get("query", "")), str(meta.get("document", "")), str(meta.get("source", "none")))


def family_prompts(model_name: str) -> tuple[str, str, str] | None:
    """``(family, query prompt, document prompt)`` of a known family that does not ship its prompts.

    Only the last path component counts (``intfloat/e5-base-v2`` -> ``e5-base-v2``), so a folder
    name higher up a local path cannot pick a family."""
    name = model_name.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    for pattern, family, query, document in KNOWN_FAMILIES:
        if pattern.search(name):
            return family, query, document
    return None


def model_prompts(prompts: dict[str, str], default_prompt_name: str | None) -> tuple[str, str]:
    """What ``encode_query`` / ``encode_document`` would prepend, given a model's prompt table."""
    default = prompts.get(default_prompt_name, "") if default_prompt_name else ""
    query = prompts.get("query", default)
    document = next((prompts[n] for n in DOCUMENT_PROMPT_NAMES if n in prompts), default)
    return query or "", document or ""


def resolve_prompts(
    model_name: str,
    prompts: dict[str, str] | None = None,
    default_prompt_name: str | None = None,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
) -> EmbeddingPrompts:
    """The prompts to use for ``model_name`` (see the module docstring for the order)."""
    query, document = model_prompts(prompts or {}, default_prompt_name)
    source = "model" if query or document else "none"
    if source == "none" and (family := family_prompts(model_name)) is not None:
        source, query, document = f"family:{family[0]}", family[1], family[2]
    if query_prompt is not None or document_prompt is not None:
        source = "override" if source == "none" else f"override+{source}"
        query = query if query_prompt is None else query_prompt
        document = document if document_prompt is None else document_prompt
    return EmbeddingPrompts(query, document, source)
