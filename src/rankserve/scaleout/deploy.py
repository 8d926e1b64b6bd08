"""Build, run and stop the RankServe application on Ray Serve.

Two deployments: ``Scorer`` (a :class:`~rankserve.scaleout.replica.ScoringReplica` per GPU, or
CPU share; fixed count or autoscaled on ongoing requests per replica) and ``Ingress`` (the very
same FastAPI app as ``rankserve serve``, built by ``create_app`` with a
:class:`~rankserve.scaleout.backend.RayBackend`). Ray Serve's HTTP proxy forwards to the
ingress; the ingress calls the scorers through a deployment handle (Ray Serve's routing).

``app_builder`` is the entry point for Serve config files (``serve run`` / ``serve deploy`` /
KubeRay's ``serveConfigV2``): ``import_path: rankserve.scaleout.deploy:app_builder`` with
``args`` naming ``rankserve serve`` options (``model``, ``replicas``, ``min_replicas``...).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from dataclasses import dataclass
from typing import Any

from rankserve.server.settings import ServerSettings

log = logging.getLogger("rankserve.scaleout")

APP_NAME = "rankserve"
SCORER = "Scorer"
INGRESS = "Ingress"
MAX_ONGOING_PER_REPLICA = 256  # the batcher wants many requests at once: it packs them together
TARGET_ONGOING_PER_REPLICA = 16  # autoscaling: add a replica when each has more requests than this in flight


@dataclass(frozen=True)
class ScaleSettings:
    """How many scoring replicas, and what each one gets."""

    replicas: int | None = 1  # None: autoscale between min_replicas and max_replicas
    min_replicas: int = 1
    max_replicas: int = 1
    gpus_per_replica: float = 0.0  # 1 on GPU clusters: Ray sets CUDA_VISIBLE_DEVICES per replica
    cpus_per_replica: float = 0.5
    target_ongoing_requests: int = TARGET_ONGOING_PER_REPLICA


def build(settings: ServerSettings, scale: ScaleSettings, *, mount_ui: bool = False):
    """The bound Serve application (call ``serve.run`` on it)."""
    from ray import serve

    from rankserve.scaleout.replica import ScoringReplica

    options: dict[str, Any] = dict(
        name=SCORER,
        ray_actor_options={"num_cpus": scale.cpus_per_replica, "num_gpus": scale.gpus_per_replica},
        max_ongoing_requests=MAX_ONGOING_PER_REPLICA,
        graceful_shutdown_timeout_s=_drain_s(settings),
        health_check_period_s=2.0,
    )
    if scale.replicas is None:
        options["autoscaling_config"] = {
            "min_replicas": scale.min_replicas,
            "max_replicas": scale.max_replicas,
            "target_ongoing_requests": scale.target_ongoing_requests,
        }
    else:
        options["num_replicas"] = scale.replicas
    scorer = serve.deployment(ScoringReplica).options(**options)
    minimum = scale.min_replicas if scale.replicas is None else scale.replicas

    @serve.ingress()
    class Ingress:
        """The HTTP front end: ``create_app`` with the Ray backend."""

        def __init__(self, scorer_handle: Any, server_settings: ServerSettings, ui: bool, min_total: int) -> None:
            self.scorer_handle = scorer_handle
            self.server_settings = server_settings
            self.ui = ui
            self.min_total = min_total

        def __serve_build_asgi_app__(self):
            from rankserve.scaleout.backend import RayBackend
            from rankserve.server.app import create_app

            backend = RayBackend(self.scorer_handle, APP_NAME, SCORER, self.min_total)
            return create_app(self.server_settings, backend=backend, mount_ui=self.ui)

    ingress = serve.deployment(Ingress).options(
        name=INGRESS,
        ray_actor_options={"num_cpus": 0.1},
        max_ongoing_requests=4096,
        graceful_shutdown_timeout_s=_drain_s(settings),
    )
    use_gpu = scale.gpus_per_replica > 0
    return ingress.bind(scorer.bind(settings, APP_NAME, use_gpu), settings, mount_ui, minimum)


def _drain_s(settings: ServerSettings) -> float:
    return (settings.deadline or 600.0) + 5.0


def start(settings: ServerSettings, scale: ScaleSettings, *, mount_ui: bool = False) -> None:
    """Start Serve's HTTP proxy on ``settings.host:port`` and deploy (Ray must be initialised)."""
    from ray import serve

    serve.start(
        http_options={
            "host": settings.host,
            "port": settings.port,
            # ours answers 504 first; Serve's own timeout is only a backstop
            "request_timeout_s": _drain_s(settings) + 5.0,
        }
    )
    serve.run(build(settings, scale, mount_ui=mount_ui), name=APP_NAME, route_prefix="/", blocking=False)


def stop(local_cluster: bool) -> None:
    """Drain and remove the application (replicas finish their queued work), then the hub."""
    import ray
    from ray import serve

    from rankserve.scaleout.hub import kill_hub

    try:
        serve.delete(APP_NAME)
    finally:
        kill_hub(APP_NAME)
        if local_cluster:
            serve.shutdown()
        ray.shutdown()


def resolve_replicas(value: str, *, gpus_in_cluster: float) -> int:
    """``auto``: one per GPU of the cluster (at least 1); else a positive integer."""
    if value == "auto":
        return max(1, int(gpus_in_cluster))
    count = int(value)
    if count < 1:
        raise ValueError("--replicas must be at least 1 (or auto)")
    return count


def run(
    settings: ServerSettings,
    replicas: str | None,
    *,
    ray_address: str | None,
    min_replicas: int | None,
    max_replicas: int | None,
    cpus_per_replica: float,
    mount_ui: bool,
) -> None:
    """``rankserve serve --replicas ...``: connect or start Ray, deploy, serve until SIGTERM/SIGINT, drain."""
    import ray

    ray.init(address=ray_address, namespace=APP_NAME, log_to_driver=True)
    local_cluster = ray_address is None
    gpus = float(ray.cluster_resources().get("GPU", 0))
    use_gpu = gpus > 0 and not settings.device.startswith("cpu")
    autoscale = min_replicas is not None or max_replicas is not None
    if autoscale:
        low = min_replicas if min_replicas is not None else 1
        high = max_replicas if max_replicas is not None else max(low, resolve_replicas("auto", gpus_in_cluster=gpus))
        scale = ScaleSettings(None, low, high, 1.0 if use_gpu else 0.0, cpus_per_replica)
    else:
        count = resolve_replicas(replicas or "1", gpus_in_cluster=gpus)
        scale = ScaleSettings(count, count, count, 1.0 if use_gpu else 0.0, cpus_per_replica)
    if not use_gpu:
        settings = dataclasses.replace(settings, device="cpu" if settings.device == "auto" else settings.device)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        start(settings, scale, mount_ui=mount_ui)
        log.info(
            "RankServe on Ray Serve: http://%s:%d, %s scoring replica(s) (%s each)",
            settings.host,
            settings.port,
            scale.replicas or f"{scale.min_replicas}-{scale.max_replicas}",
            "1 GPU" if use_gpu else f"{cpus_per_replica:g} CPU",
        )
        stopping.wait()
        log.info("shutting down: draining the replicas")
    finally:
        stop(local_cluster)


def app_builder(args: dict[str, Any]):
    """Entry point for Serve config files: ``args`` are ``rankserve serve`` options (snake_case)."""
    args = dict(args or {})
    scale_keys = {f.name for f in dataclasses.fields(ScaleSettings)}
    scale_args = {k: args.pop(k) for k in list(args) if k in scale_keys}
    if "min_replicas" in scale_args or "max_replicas" in scale_args:
        scale_args["replicas"] = None
    mount_ui = bool(args.pop("ui", False))
    settings = ServerSettings(**args)
    return build(settings, ScaleSettings(**scale_args), mount_ui=mount_ui)
