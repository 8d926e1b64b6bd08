"""Which pairs go into the next model batch: a pure function of the queue (no I/O, no clock of its own).

Round-robin across queued tickets within a token budget, so a small request that arrives
behind a big one gets pairs into the very next batch instead of waiting for all of the big
one's batches. Within a ticket pairs are taken in order. A prefix is counted once per batch,
as the engine's ``plan_batches`` counts it (it is computed once). Tickets that got pairs and
still have more move to the back of the queue, so the next batch starts with those this batch
did not reach. A single pair larger than the budget still goes alone (the engine caps pair
length). Pairs of a listwise group (``Pair.group``: every document of a listwise request) are
taken as one unit, never split across batches: their scores exist only together.

Before a ticket gets its first pair, its deadline is checked: one whose deadline has passed,
or whose own remaining tokens cannot be scored before it at the measured throughput (a lower
bound of its real finish time: it shares batches with others), is handed back as *expired*
instead of spending model time on an answer nobody will read.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from rankserve.batcher.ticket import Ticket
from rankserve.engine.types import Pair


@dataclass
class Plan:
    """The scheduler's answer: the batch, the queue after it, and the tickets dropped for their deadline."""

    batch: dict[Ticket, list[Pair]] = field(default_factory=dict)
    queue: deque[Ticket] = field(default_factory=deque)
    expired: list[Ticket] = field(default_factory=list)

    @property
    def pairs(self) -> list[Pair]:
        return [p for own in self.batch.values() for p in own]


def cannot_finish(ticket: Ticket, now: float, tokens_per_s: float | None) -> bool:
    """Whether the ticket's deadline passed, or its remaining work alone would end after it."""
    if ticket.deadline is None:
        return False
    left = ticket.deadline - now
    if left <= 0:
        return True
    return bool(tokens_per_s) and ticket.started_at is None and ticket.remaining_tokens / tokens_per_s > left


def take_batch(queue: deque[Ticket], budget: int, now: float, tokens_per_s: float | None = None) -> Plan:
    """Pairs for the next model call within ``budget`` tokens (see the module docstring)."""
    plan = Plan()
    prefixes: set[tuple[int, ...]] = set()
    active = []
    for ticket in queue:
        if ticket.cancelled:
            continue
        if cannot_finish(ticket, now, tokens_per_s):
            plan.expired.append(ticket)
        else:
            active.append(ticket)
    batch = plan.batch
    while active:
        still: list[Ticket] = []
        for ticket in active:
            pair = ticket.prepared.pairs[ticket.cursor]
            unit = (
                [pair] if pair.group is None else ticket.prepared.pairs[ticket.cursor : ticket.cursor + pair.group.size]
            )
            tokens = sum(p.num_tokens for p in unit)
            cost = len(pair.tokens) if pair.group is None and pair.prefix in prefixes else tokens
            if cost > budget and batch:
                continue  # does not fit: this ticket waits for the next batch
            batch.setdefault(ticket, []).extend(unit)
            prefixes.add(pair.prefix)
            ticket.cursor += len(unit)
            ticket.remaining_tokens -= tokens
            budget -= cost
            if ticket.cursor < len(ticket.prepared.pairs):
                still.append(ticket)
        active = still if budget > 0 else []
    gone = set(plan.expired)
    served = [t for t in queue if t in batch]
    waiting = [t for t in queue if t not in batch and not t.cancelled and t not in gone]
    unfinished = [t for t in served if t.cursor < len(t.prepared.pairs)]
    plan.queue = deque(waiting + unfinished)
    return plan
