"""A tiny actor the replicas report to, so that one ``/metrics`` scrape shows every replica.

Ray Serve routes requests to *some* replica; a scrape needs *every* replica. Each replica
pushes its Prometheus text (and pid/node, for operators) about once a second; the ingress reads
the latest of each. A replica that stopped pushing for ``STALE_S`` seconds (it died) leaves the
scrape.
"""

from __future__ import annotations

import time
from typing import Any

STALE_S = 5.0
NAMESPACE = "rankserve"


class MetricsHub:
    """Latest report of each replica: ``{replica_id: {"text": bytes, "pid": int, "node": str, "at": float}}``."""

    def __init__(self) -> None:
        self.reports: dict[str, dict[str, Any]] = {}

    def push(self, replica: str, report: dict[str, Any]) -> None:
        self.reports[replica] = {**report, "at": time.monotonic()}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        return {k: v for k, v in self.reports.items() if now - v["at"] < STALE_S}


def hub_name(app_name: str) -> str:
    return f"rankserve-metrics-{app_name}"


def get_hub(app_name: str):
    """The hub's actor handle, created on first use (detached: replicas come and go, it stays)."""
    import ray

    actor = ray.remote(num_cpus=0)(MetricsHub)
    return actor.options(name=hub_name(app_name), namespace=NAMESPACE, get_if_exists=True, lifetime="detached").remote()


def kill_hub(app_name: str) -> None:
    import ray

    try:
        ray.kill(ray.get_actor(hub_name(app_name), namespace=NAMESPACE))
    except ValueError:
        pass  # never created, or already gone
