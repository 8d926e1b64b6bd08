"""Exceptions shared by every layer.

Everything a caller can get wrong raises a subclass of ``ValueError`` so that plain
``except ValueError`` works, and the HTTP layer can map each class to one status code.
"""

from __future__ import annotations


class RankServeError(Exception):
    """Base class for errors RankServe raises on purpose."""


class InvalidInputError(RankServeError, ValueError):
    """The caller sent something we cannot score (empty query, empty document, bad policy...)."""


class InvalidTextError(InvalidInputError):
    """A query or document we cannot score, with which one it is, so a front end can name it its own way.

    ``field`` is ``"query"`` or ``"documents"``; ``index`` the document's position (None: the query or
    the whole list); ``empty`` tells an empty or blank input from a wrong type. The message uses the
    engine's names ("document 2 is empty"). Fields have defaults so the error pickles (see below).
    """

    def __init__(self, message: str, field: str = "documents", index: int | None = None, empty: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.index = index
        self.empty = empty


class ModelLoadError(RankServeError, ValueError):
    """The model path or id does not point at a model we know how to load."""


class EngineError(RankServeError, RuntimeError):
    """Scoring failed for a reason that is not the caller's input (e.g. out of GPU memory on one pair)."""


class UnavailableError(RankServeError, RuntimeError):
    """Scoring cannot happen now (busy, shutting down, a replica gone); retry after ``retry_after`` seconds.

    Every error here pickles (``pickle.loads(pickle.dumps(e))`` keeps class, message and fields):
    a scoring replica in another process raises them to the HTTP front end. Extra fields
    therefore have defaults, as ``BaseException`` re-creates an error from its message alone
    before restoring its attributes.
    """

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceededError(RankServeError, TimeoutError):
    """The request's deadline (``--request-timeout``) passed, or its work cannot finish before it."""


class RequestTooLargeError(RankServeError, ValueError):
    """The request tokenized to more than the per-request ceiling (``--max-request-tokens``): 413."""

    def __init__(self, message: str, tokens: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.tokens = tokens
        self.limit = limit
