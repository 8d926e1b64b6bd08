"""Scale out on Ray Serve: N replicas (engine + batcher each) behind the same HTTP API.

Layout: :mod:`.replica` (the scoring deployment: one engine on one GPU, or a CPU share),
:mod:`.hub` (a small actor the replicas report their metrics to), :mod:`.backend` (the
:class:`~rankserve.server.backend.ScoringBackend` the HTTP layer talks to: Ray Serve's handle,
Ray Serve's routing), :mod:`.metrics` (one Prometheus scrape of every replica),
:mod:`.deploy` (building, running and stopping the Serve application; also the entry point of
``serve run`` / KubeRay configs).

Where tokenization runs: in the replicas. The ingress is one process for the whole cluster;
tokenizing there would make it the bottleneck as replicas are added (tokenizing 100 DL19
passages costs about as much CPU as answering the HTTP request), and token ids pickle larger
than the text they came from (int lists vs UTF-8). Replicas already have a tokenizer thread
beside their model thread, so tokenization scales with the replicas.

Nothing here is imported by plain ``rankserve serve``; Ray is an extra:
``pip install 'rankserve[ray]'``.
"""

from __future__ import annotations

INSTALL_HINT = "pip install 'rankserve[ray]'"


class RayMissingError(RuntimeError):
    """Ray Serve is not installed (or cannot be imported)."""


def require_ray() -> None:
    """Import Ray Serve or raise :class:`RayMissingError` naming the install command."""
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        raise RayMissingError(f"--replicas needs Ray Serve, which is not installed: {INSTALL_HINT}") from exc
