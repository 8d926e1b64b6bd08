"""Product defaults shared by the CLI, the server and the engine (one place to change them)."""

DEFAULT_MODEL = "Qwen/Qwen3-Reranker-0.6B"

QUANTIZATIONS = ("none", "fp8")
"""Values of ``--quantize`` / ``Reranker(quantize=...)``; ``none`` keeps the checkpoint's precision."""
