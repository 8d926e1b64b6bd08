"""Exceptions shared by every layer.

Everything a caller can get wrong raises a subclass of ``ValueError`` so that plain
``except ValueError`` works, and the HTTP layer can map each class to one status code.
"""

from __future__ import annotations


class RankServeError(Exception):
    """Base class for errors RankServe raises on purpose."""


class InvalidInputError(RankServeError, ValueError):
    """The caller sent something we cannot score (empty query, empty document, bad policy...)."""


class ModelLoadError(RankServeError, ValueError):
    """The model path or id does not point at a model we know how to load."""


class EngineError(RankServeError, RuntimeError):
    """Scoring failed for a reason that is not the caller's input (e.g. out of GPU memory on one pair)."""
