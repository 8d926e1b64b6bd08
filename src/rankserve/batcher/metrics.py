"""The metric series the batcher updates, declared as protocols.

``rankserve.server.metrics.Metrics`` provides them; declaring them here keeps the batcher
free of the HTTP server (and of prometheus_client).
"""

from __future__ import annotations

from typing import Protocol


class CounterLike(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class GaugeLike(Protocol):
    def set(self, value: float) -> None: ...


class HistogramLike(Protocol):
    def observe(self, amount: float) -> None: ...


class BatcherMetrics(Protocol):
    """The series the batcher updates."""

    @property
    def rejected(self) -> CounterLike: ...
    @property
    def pairs_dropped(self) -> CounterLike: ...
    @property
    def pairs_scored(self) -> CounterLike: ...
    @property
    def tokens(self) -> CounterLike: ...
    @property
    def queue_depth(self) -> GaugeLike: ...
    @property
    def queue_tokens(self) -> GaugeLike: ...
    @property
    def batch_tokens(self) -> HistogramLike: ...
    @property
    def batch_pairs(self) -> HistogramLike: ...
    @property
    def batch_seconds(self) -> HistogramLike: ...
