"""Server settings: one frozen object built by the CLI and read by every server module.

Kept separate from the CLI so that ``create_app`` can be called from Python (tests, other
ASGI apps) without going through typer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankserve.defaults import DEFAULT_MODEL

API_KEY_ENV = "RANKSERVE_API_KEY"


@dataclass(frozen=True)
class ServerSettings:
    """Everything ``rankserve serve`` can be told; defaults match the CLI's defaults."""

    model: str = DEFAULT_MODEL
    served_model_name: str | None = None
    host: str = "0.0.0.0"
    port: int = 8000
    device: str = "auto"
    dtype: str = "auto"
    max_length: int = 8192
    max_batch_tokens: int | None = None  # None: the engine's own default
    max_documents: int = 1000
    max_request_bytes: int = 32 * 1024 * 1024
    max_queued_tokens: int = 4 * 1024 * 1024
    request_timeout: float = 600.0
    max_request_tokens: int = 512 * 1024  # one request's tokens, every window counted (0: no limit)
    body_timeout: float = 30.0  # seconds to receive a request's headers and body (0: no limit)
    max_connections: int = 1024  # open connections at once; more are answered 503 by uvicorn
    shutdown_timeout: float = 30.0  # seconds to drain on SIGTERM before closing what is left
    api_key: str | None = None
    metrics_public: bool = False
    presets_file: Path | None = None
    log_file: Path | None = None
    log_level: str = "info"
    prefix_reuse: bool = True
    compile: str = "auto"  # auto (CUDA only) | on | off: torch.compile the model's layers at load
    family: str | None = None  # reranker family recipe (rankserve.engine.families); None: recognised
    quantize: str = "none"  # none | fp8: FP8 projections (Hopper/Ada GPUs)
    cuda_graphs: bool = True  # replay small batches as CUDA graphs where they run (Hopper GPUs)

    @property
    def model_name(self) -> str:
        """The name clients see in responses and must use in ``model`` fields."""
        return self.served_model_name or self.model

    @property
    def deadline(self) -> float | None:
        """``request_timeout`` in seconds, or None when it is 0 (no limit)."""
        return self.request_timeout if self.request_timeout > 0 else None

    def engine_kwargs(self, device: str | None = None) -> dict[str, Any]:
        """``Reranker.from_pretrained``'s options from these settings (``device`` overrides ``--device``).

        ``max_batch_tokens`` is passed only when set, so the engine keeps its own default otherwise.
        """
        kwargs: dict[str, Any] = dict(
            device=device or self.device,
            dtype=self.dtype,
            max_length=self.max_length,
            prefix_reuse=self.prefix_reuse,
            compile=self.compile,
            quantize=self.quantize,
            cuda_graphs=self.cuda_graphs,
            family=self.family,
        )
        if self.max_batch_tokens:
            kwargs["max_batch_tokens"] = self.max_batch_tokens
        return kwargs
