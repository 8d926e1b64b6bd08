"""What query and document text the engine accepts, checked and worded in one place.

Every front end runs these checks before tokenizing, so bad input costs nothing. The errors
carry which input failed (:class:`~rankserve.errors.InvalidTextError`), so a front end that
names its fields differently (``texts[2]``, ``text_2[1]``) renames them in the engine's message
instead of checking again. No torch, no web imports: a CPU-only front end runs this too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rankserve.errors import InvalidTextError

# Blank: nothing but these characters (JavaScript's \s plus the separators Python's strip() also
# removes), so the engine's "is empty" and the HTTP API's OpenAPI pattern agree on every string.
_BLANK_CLASS = r"\t\n\u000b\u000c\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff\u001c-\u001f\u0085"
NON_BLANK_PATTERN = f"[^{_BLANK_CLASS}]"
"""JSON Schema pattern (ECMA regex) of a non-blank text; Python's ``re`` reads the same escapes."""
_NON_BLANK = re.compile(NON_BLANK_PATTERN)


def is_blank(text: str) -> bool:
    """True for an empty or whitespace-only text, exactly as the OpenAPI schema's pattern says."""
    return _NON_BLANK.search(text) is None


def check_texts(queries: Sequence[object], documents: object) -> None:
    """Reject queries or documents we cannot score; a document's index is its place in ``documents``.

    Several queries are allowed for front ends that score pairs; the engine passes one.
    """
    for query in queries:
        if not isinstance(query, str):
            raise InvalidTextError(f"query must be a string, got {type(query).__name__}", "query")
        if is_blank(query):
            raise InvalidTextError("query cannot be empty", "query", empty=True)
    if not queries:
        raise InvalidTextError("query cannot be empty", "query", empty=True)
    if isinstance(documents, str) or not isinstance(documents, Sequence):
        raise InvalidTextError("documents must be a list of strings", "documents")
    if len(documents) == 0:
        raise InvalidTextError("documents cannot be empty", "documents", empty=True)
    for i, doc in enumerate(documents):
        if not isinstance(doc, str):
            raise InvalidTextError(f"document {i} must be a string, got {type(doc).__name__}", "documents", i)
        if is_blank(doc):
            raise InvalidTextError(f"document {i} is empty", "documents", i, empty=True)
