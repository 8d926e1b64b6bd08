"""Dynamic batching across concurrent requests (TEI style), independent of HTTP and of torch.

Why a batcher: on a GPU, one batch of many short pairs costs about as much as one pair, so
pairs from every in-flight request are packed together. Its jobs live in their own modules:
:mod:`.admission` (may a request join the queue: token limit, deadline, Retry-After),
:mod:`.scheduler` (a pure function choosing the next batch), :mod:`.ticket` (one queued
request and its scores), :mod:`.metrics` (the series it updates) and :mod:`.core` (the
:class:`Batcher` composing them, with the model thread, the worker task and the drain).
"""

from rankserve.batcher.admission import QueueFullError
from rankserve.batcher.core import Batcher, BatcherClosedError, NonFiniteScoreError, ScoringEngine
from rankserve.batcher.metrics import BatcherMetrics
from rankserve.batcher.ticket import Ticket

__all__ = [
    "Batcher",
    "BatcherClosedError",
    "BatcherMetrics",
    "NonFiniteScoreError",
    "QueueFullError",
    "ScoringEngine",
    "Ticket",
]
