"""Admission: whether a prepared request may join the queue, and when to retry if not.

Two limits, both answered with :class:`QueueFullError` (503 + Retry-After over HTTP):

- tokens: queued work plus this request may not exceed ``max_queued_tokens``; an empty queue
  admits any request (the limit stops work piling up, it must not make one big request
  impossible);
- deadline: with a measured throughput, a request whose work cannot finish before its
  deadline is refused at once instead of queueing to time out. Scheduling is round-robin
  (processor sharing), so until this request is done every queued request takes at most as
  many tokens as this one needs: the estimate is ``(sum(min(queued_i, own)) + own) / rate``.
  An idle queue admits anything (nothing to estimate from but the request itself).

The throughput is a moving average of tokens per second over finished batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from rankserve.batcher.ticket import Ticket
from rankserve.errors import UnavailableError

MAX_RETRY_AFTER_S = 60
HEADROOM = 0.8
"""Admit only what the estimate finishes within this share of the time left: the measured rate is the model
thread's, and tokenizing the next requests, the event loop and other processes take some of it back."""


class QueueFullError(UnavailableError):
    """The queue holds too much work for this request; retry after ``retry_after`` seconds."""


class Throughput:
    """Tokens per second scored, a moving average over batches (0.8 old, 0.2 new)."""

    def __init__(self) -> None:
        self.tokens_per_s: float | None = None

    def record(self, tokens: int, seconds: float) -> None:
        if seconds > 0 and tokens > 0:
            rate = tokens / seconds
            self.tokens_per_s = rate if self.tokens_per_s is None else 0.8 * self.tokens_per_s + 0.2 * rate

    def seconds_for(self, tokens: float) -> float | None:
        return tokens / self.tokens_per_s if self.tokens_per_s else None


class Admission:
    """Decides on each submitted request (see the module docstring)."""

    def __init__(self, max_queued_tokens: int, throughput: Throughput) -> None:
        self.max_queued_tokens = max_queued_tokens
        self.throughput = throughput

    def check(self, tokens: int, queued_tokens: int, queue: Iterable[Ticket], timeout: float | None) -> None:
        """Raise :class:`QueueFullError` if a request of ``tokens`` may not join the queue now."""
        if queued_tokens > 0 and queued_tokens + tokens > self.max_queued_tokens:
            raise QueueFullError(
                f"server is busy: {queued_tokens} tokens queued, this request needs {tokens}, "
                f"limit {self.max_queued_tokens} (--max-queued-tokens); retry later",
                self.retry_after(queued_tokens + tokens - self.max_queued_tokens, queued_tokens),
            )
        if timeout is None or queued_tokens == 0:
            return
        ahead = sum(min(t.remaining_tokens, tokens) for t in queue if not t.cancelled)
        finish = self.throughput.seconds_for(ahead + tokens)
        if finish is not None and finish > HEADROOM * timeout:
            raise QueueFullError(
                f"server is busy: this request ({tokens} tokens) would finish in about {finish:.1f} s at the "
                f"measured {self.throughput.tokens_per_s:.0f} tokens/s, after its {timeout:.1f} s deadline "
                "(--request-timeout); retry later",
                self.retry_after(finish - timeout, None, seconds=True),
            )

    def retry_after(self, excess: float, queued_tokens: int | None, seconds: bool = False) -> int:
        """Seconds until the queue has probably drained enough (1 to 60; 1 before any measurement)."""
        if seconds:
            wait: float | None = excess
        else:
            wait = self.throughput.seconds_for(max(excess, queued_tokens or 0))
        if wait is None:
            return 1
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil(wait)))
