"""The Qwen3-Reranker prompt, verbatim from the official model card.

The official recipe tokenizes ``prefix``, then the whole body string
``<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {doc}``, then ``suffix``.
We split the body into a per-request *header* (everything up to ``<Document>:``) and a
per-document part (``" " + doc``) so the header can be computed once per request.
That split yields exactly the official token ids because Qwen's pre-tokenizer always
starts a new chunk at the space before the document (``>:`` is one punctuation chunk
that cannot absorb a following space); ``tests/engine/test_prompts.py`` checks it across scripts.
"""

from __future__ import annotations

SYSTEM_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
    'and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
YES_TOKEN = "yes"
NO_TOKEN = "no"


def format_body(instruction: str | None, query: str, document: str) -> str:
    """The official body string (what the model card passes to the tokenizer)."""
    instruction = DEFAULT_INSTRUCTION if instruction is None else instruction
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"


def format_header(instruction: str | None, query: str) -> str:
    """The body up to and including ``<Document>:``: shared by all documents of a request."""
    instruction = DEFAULT_INSTRUCTION if instruction is None else instruction
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>:"


def document_part(document: str) -> str:
    """What follows the header for one document (the separating space belongs to the document)."""
    return " " + document
