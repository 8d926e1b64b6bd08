"""One queued request as the batcher sees it: its pairs, their scores so far, its timings."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from rankserve.engine.types import DocScore, PreparedRequest


@dataclass(eq=False)
class Ticket:
    """A prepared request in the queue.

    ``scores[i]`` is the score of ``prepared.pairs[i]`` once its batch ran: the engine returns
    values, the ticket keeps them. ``deadline`` (``time.perf_counter()`` clock, or ``None``)
    lets admission and scheduling refuse or drop work that cannot finish in time.
    """

    prepared: PreparedRequest
    future: asyncio.Future[list[DocScore]]
    deadline: float | None = None
    enqueued_at: float = field(default_factory=time.perf_counter)
    cursor: int = 0  # index of the next pair not yet handed to the model
    cancelled: bool = False
    started_at: float | None = None
    compute_s: float = 0.0  # model time of finished batches that held some of its pairs
    batch_started: float | None = None  # set while a batch holding its pairs runs
    scores: list[float | None] = field(default_factory=list)
    remaining_tokens: int = 0  # tokens of the pairs not yet handed to the model

    def __post_init__(self) -> None:
        self.scores = [None] * len(self.prepared.pairs)
        self.remaining_tokens = self.prepared.num_tokens

    @property
    def scored(self) -> int:
        return sum(s is not None for s in self.scores)

    @property
    def queue_ms(self) -> float:
        end = self.started_at if self.started_at is not None else time.perf_counter()
        return (end - self.enqueued_at) * 1000.0

    @property
    def compute_ms(self) -> float:
        running = time.perf_counter() - self.batch_started if self.batch_started is not None else 0.0
        return (self.compute_s + running) * 1000.0
