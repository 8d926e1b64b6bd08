"""Scale out on Ray Serve: N replicas (engine + batcher each) behind the same HTTP API.

Layout: :mod:`.replica` (the scoring deployment: one engine on one GPU, or a CPU share),
:mod:`.hub` (a small actor the replicas report their metrics to), :mod:`.backend` (the
:class:`~rankserve.server.backend.ScoringBackend` the HTTP layer talks to: Ray Serve's handle,
Ray Serve's routing), :mod:`.metrics` (one Prometheus scrape of every replica),
:mod:`.deploy` (building, running and stopping the Serve application; also the entry point of
``serve run`` / KubeRay configs).

Where tokenization runs: in the replicas, by measurement. Preparing a 100-passage DL19 request
with the real Qwen3 tokenizer takes 10.4 ms of one CPU thread (20 passages: 2.1 ms), and its
prepared pairs pickle to 1.8x the bytes of its text (68.5 vs 37.6 KiB). The ingress is one
process for the whole cluster: at a 0.6B model's ~58 ms per 100-passage batch on an H200 it
would be busy tokenizing for every sixth GPU, and would ship more bytes to each. Each replica
already has a tokenizer thread beside its model thread, so tokenization scales with replicas.
(``python3`` over ``rankserve.engine.prepare.QwenPairBuilder``, median of 20, this 2-core host.)

Nothing here is imported by plain ``rankserve serve``; Ray is an extra:
``pip install 'rankserve[ray]'``.
"""

from __future__ import annotations

from rankserve.extras import MissingExtraError, require


class RayMissingError(MissingExtraError):
    """Ray Serve is not installed (or cannot be imported)."""


def require_ray(feature: str = "--replicas") -> None:
    """Import Ray Serve or raise :class:`RayMissingError` naming the install command."""
    try:
        require("ray", feature)
        require("ray.serve", feature)
    except MissingExtraError as exc:
        raise RayMissingError(str(exc)) from exc
