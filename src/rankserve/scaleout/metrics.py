"""One Prometheus text from the ingress's own series and every replica's.

Each replica series keeps its name and gets a ``replica`` label; a copy summed over replicas
carries ``replica="all"`` (so ``rate(rankserve_pairs_scored_total{replica!="all"}[1m])`` by
replica shows imbalance, and ``{replica="all"}`` the total). The ingress's own registry also
holds the batcher series (always zero there): the replicas' take their place. Two gauges say
how many replicas are ready of how many.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families


def _families(text: bytes) -> list[Metric]:
    return [f for f in text_string_to_metric_families(text.decode("utf-8")) if not f.name.endswith("_created")]


class _Merged:
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def merge(own: bytes, replicas: Mapping[str, bytes], ready: int, total: int) -> bytes:
    """The merged scrape (see the module docstring)."""
    merged: dict[str, Metric] = {}
    totals: dict[str, dict[tuple, float]] = {}
    for replica, text in sorted(replicas.items()):
        for fam in _families(text):
            if not fam.samples:
                continue  # a labelled series the replica never uses (the HTTP ones): the ingress's own counts
            out = merged.setdefault(fam.name, Metric(fam.name, fam.documentation, fam.type))
            sums = totals.setdefault(fam.name, {})
            for s in fam.samples:
                out.add_sample(s.name, {**s.labels, "replica": replica}, s.value)
                key = (s.name, tuple(sorted(s.labels.items())))
                sums[key] = sums.get(key, 0.0) + s.value
    for name, sums in totals.items():
        for (sample, labels), value in sums.items():
            merged[name].add_sample(sample, {**dict(labels), "replica": "all"}, value)
    families = [f for f in _families(own) if f.name not in merged] + list(merged.values())
    for state, value in (("ready", ready), ("total", total)):
        gauge = Metric(f"rankserve_replicas_{state}", f"Scoring replicas {state}", "gauge")
        gauge.add_sample(f"rankserve_replicas_{state}", {}, value)
        families.append(gauge)
    return generate_latest(_Merged(families))
