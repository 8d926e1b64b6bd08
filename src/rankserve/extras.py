"""Optional dependencies: ``pip install rankserve`` serves the API; the rest are extras.

Every import of an optional package goes through :func:`require`, so a missing one is one
line naming the extra to install (the CLI prints it and exits 2), never a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from rankserve.errors import RankServeError

EXTRAS: dict[str, str] = {
    "gradio": "ui",
    "bm25s": "eval",
    "ranx": "eval",
    "pytrec_eval": "eval",
    "matplotlib": "eval",
    "pypdf": "pdf",
    "sentence_transformers": "dense",
    "langchain_core": "langchain",
    "llama_index.core": "llamaindex",
    "ray": "ray",
}
"""Top-level module -> the extra that installs it."""


class MissingExtraError(RankServeError, ImportError):
    """An optional package is not installed; the message says which extra brings it."""


def install_hint(extra: str) -> str:
    return f"pip install 'rankserve[{extra}]'"


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``feature`` and its extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module.split(".")[0], EXTRAS.get(module, "all"))
        raise MissingExtraError(f"{feature} needs the '{extra}' extra: {install_hint(extra)}") from exc


def available(module: str) -> bool:
    """Whether ``module`` imports (a broken or hidden install counts as missing)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
