"""Prometheus metrics, on a registry owned by one app.

A per-app :class:`CollectorRegistry` (not the process-global default) lets several apps live
in one process - tests, or an app embedded in another service - without "duplicated
timeseries" errors, and keeps ``/metrics`` limited to RankServe's own series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TOKEN_BUCKETS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


class Metrics:
    """Every series the server exports; the batcher and the HTTP middleware update them."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "rankserve_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "rankserve_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("rankserve_queue_depth", "Requests waiting for the model", registry=r)
        self.queue_tokens = Gauge("rankserve_queue_tokens", "Tokens waiting for the model", registry=r)
        self.batch_tokens = Histogram(
            "rankserve_batch_tokens", "Tokens per model batch", buckets=TOKEN_BUCKETS, registry=r
        )
        self.batch_pairs = Histogram(
            "rankserve_batch_pairs",
            "Pairs per model batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "rankserve_batch_duration_seconds", "Model time per batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.pairs_scored = Counter("rankserve_pairs_scored", "Query-document pairs scored", registry=r)
        self.pairs_dropped = Counter(
            "rankserve_pairs_dropped",
            "Queued pairs dropped because their request was cancelled, timed out or disconnected",
            registry=r,
        )
        self.tokens = Counter("rankserve_prompt_tokens", "Prompt tokens scored", registry=r)
        self.truncations = Counter("rankserve_truncations", "Documents truncated to fit the token budget", registry=r)
        self.rejected = Counter("rankserve_rejected", "Requests refused because the queue was full", registry=r)
        self.model_loaded = Gauge("rankserve_model_loaded", "1 once the model is ready", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
