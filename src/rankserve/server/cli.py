"""``rankserve serve``: run the HTTP API (and UI, when installed) with uvicorn.

Registered by ``rankserve.cli`` as ``app.command("serve")(serve)``. The port is bound here,
before the model or uvicorn start, so "port in use" is one clear line and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
import weakref
from enum import Enum
from pathlib import Path

import typer
import uvicorn

from rankserve.cliutil import fail
from rankserve.defaults import DEFAULT_MODEL, QUANTIZATIONS
from rankserve.netutil import MAX_PORT, MIN_PORT, BindError, bind
from rankserve.server.settings import API_KEY_ENV, ServerSettings

log = logging.getLogger("rankserve.server")

ENV_PREFIX = "RANKSERVE"
SERVE_CONTEXT = {"auto_envvar_prefix": ENV_PREFIX}
"""Every ``serve`` option can come from ``RANKSERVE_<OPTION>`` (``--max-length`` ->
``RANKSERVE_MAX_LENGTH``); a command-line option wins over its variable."""


class LogFormat(str, Enum):
    """``--log-format`` values."""

    text = "text"
    json = "json"


class LogLevel(str, Enum):
    """``--log-level`` values (anything else is a usage error, not a traceback)."""

    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def serve(
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Hugging Face id or local model directory."),
    host: str = typer.Option("0.0.0.0", help="Interface to listen on."),
    port: int = typer.Option(8000, min=MIN_PORT, max=MAX_PORT, help="TCP port."),
    served_model_name: str | None = typer.Option(
        None, help="Model name shown in responses and accepted in `model` fields (default: --model)."
    ),
    max_length: int = typer.Option(8192, help="Token budget per (query, document) pair."),
    dtype: str = typer.Option("auto", help="auto, float32, bfloat16 or float16."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
    api_key: str | None = typer.Option(
        None, envvar=API_KEY_ENV, help=f"Require 'Authorization: Bearer KEY' (or set {API_KEY_ENV})."
    ),
    log_file: Path | None = typer.Option(None, help="Also write the log to this file."),
    log_level: LogLevel = typer.Option(LogLevel.info, case_sensitive=False, help="debug, info, warning or error."),
    log_format: LogFormat = typer.Option(LogFormat.text, help="text, or json: one JSON object per log line."),
    presets: Path | None = typer.Option(
        None, "--presets", help="TOML/YAML file of name = instruction presets (adds to the shipped ones)."
    ),
    max_batch_tokens: int | None = typer.Option(None, help="Token budget of one model batch (default: the engine's)."),
    max_documents: int = typer.Option(1000, help="Most documents per request (more: 413)."),
    max_request_bytes: int = typer.Option(32 * 1024 * 1024, help="Largest request body (more: 413)."),
    max_queued_tokens: int = typer.Option(
        4 * 1024 * 1024, help="Tokens allowed to wait for the model (more: 503 + Retry-After)."
    ),
    request_timeout: float = typer.Option(600.0, help="Seconds before a request is answered 504 (0: no limit)."),
    max_request_tokens: int = typer.Option(
        512 * 1024,
        min=0,
        help="Most tokens one request may score, every chunk window counted (more: 413; 0: no limit).",
    ),
    body_timeout: float = typer.Option(
        30.0, min=0, help="Seconds a client has to send a request's headers and body (slower: 408 / closed; 0: none)."
    ),
    max_connections: int = typer.Option(
        1024, min=1, help="Open connections at once; requests beyond it are answered 503."
    ),
    shutdown_timeout: float = typer.Option(
        30.0, min=0, help="On SIGTERM, seconds to finish in-flight requests before closing the rest and exiting 0."
    ),
    metrics_public: bool = typer.Option(False, help="Serve /metrics without the API key."),
    ui: bool = typer.Option(True, help="Mount the web UI at /ui when it is installed."),
    compile: str = typer.Option("auto", help="torch.compile the model at load: auto (on for CUDA GPUs), on or off."),
    quantize: str = typer.Option(
        "none",
        help="none, or fp8: FP8 projections on Hopper/Ada GPUs with bf16 (half the weight memory, not faster; "
        "scores shift).",
    ),
    family: str | None = typer.Option(
        None, help="Reranker family recipe for a fine-tune whose name does not say it (see docs/models.md)."
    ),
    cuda_graphs: bool = typer.Option(
        True, help="Replay small batches as CUDA graphs recorded at load (Hopper GPUs; sizes where it is faster)."
    ),
    replicas: str | None = typer.Option(
        None, help="Scale out on Ray Serve: N scoring replicas, or auto (one per GPU). Needs rankserve[ray]."
    ),
    ray_address: str | None = typer.Option(
        None, help="Join this Ray cluster (auto, or ray://host:10001) instead of starting a local one."
    ),
    min_replicas: int | None = typer.Option(None, min=0, help="Autoscale on Ray Serve: fewest scoring replicas."),
    max_replicas: int | None = typer.Option(None, min=1, help="Autoscale on Ray Serve: most scoring replicas."),
    replica_cpus: float = typer.Option(0.5, min=0.01, help="CPUs Ray reserves per scoring replica."),
) -> None:
    """Serve the reranking HTTP API (simple, Jina/Cohere and vLLM formats)."""
    from rankserve.server.logsetup import setup_logging
    from rankserve.server.presets import PresetFileError, load_presets

    settings = ServerSettings(
        model=model,
        served_model_name=served_model_name,
        host=host,
        port=port,
        device=device,
        dtype=dtype,
        max_length=max_length,
        max_batch_tokens=max_batch_tokens,
        max_documents=max_documents,
        max_request_bytes=max_request_bytes,
        max_queued_tokens=max_queued_tokens,
        request_timeout=request_timeout,
        max_request_tokens=max_request_tokens,
        body_timeout=body_timeout,
        max_connections=max_connections,
        shutdown_timeout=shutdown_timeout,
        api_key=(api_key or "").strip() or None,
        metrics_public=metrics_public,
        presets_file=presets,
        log_file=log_file,
        log_level=log_level.value,
        compile=compile,
        quantize=quantize,
        cuda_graphs=cuda_graphs,
        family=family,
    )
    if compile not in ("auto", "on", "off"):
        fail(f"--compile must be auto, on or off, not {compile!r}", 2)
    if quantize not in QUANTIZATIONS:
        fail(f"--quantize must be {' or '.join(QUANTIZATIONS)}, not {quantize!r}", 2)
    setup_logging(log_level.value, log_file, log_format.value)
    try:
        load_presets(presets)
    except PresetFileError as exc:
        fail(str(exc), 2)
    if replicas is not None or ray_address is not None or min_replicas is not None or max_replicas is not None:
        _serve_on_ray(settings, replicas, ray_address, min_replicas, max_replicas, replica_cpus, ui)
        return
    try:
        sock = bind(host, port)
    except BindError as exc:
        fail(str(exc), 1)
    run(settings, sock, ui=ui)


def _serve_on_ray(
    settings: ServerSettings,
    replicas: str | None,
    ray_address: str | None,
    min_replicas: int | None,
    max_replicas: int | None,
    replica_cpus: float,
    ui: bool,
) -> None:
    """``--replicas`` and friends: the same app on Ray Serve (imported only here)."""
    from rankserve.scaleout import RayMissingError, require_ray

    if replicas is not None and replicas != "auto" and not (replicas.isdigit() and int(replicas) >= 1):
        fail(f"--replicas must be a positive number or auto, not {replicas!r}", 2)
    if min_replicas is not None and max_replicas is not None and min_replicas > max_replicas:
        fail("--min-replicas cannot be larger than --max-replicas", 2)
    try:
        require_ray()
    except RayMissingError as exc:
        fail(str(exc), 1)
    from rankserve.scaleout.deploy import run as run_on_ray

    run_on_ray(
        settings,
        replicas,
        ray_address=ray_address,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        cpus_per_replica=replica_cpus,
        mount_ui=ui,
    )


def run(settings: ServerSettings, sock: socket.socket, *, ui: bool = True) -> None:
    """Serve on an already bound socket until SIGINT/SIGTERM; exit 1 if the model fails to load."""
    from rankserve.server.app import create_app

    load_failed: list[BaseException] = []
    server: _Server | None = None

    def on_load_error(exc: BaseException) -> None:
        load_failed.append(exc)
        if server is not None:
            server.should_exit = True

    device, dtype = _resolve_target(settings)
    log.info(
        "Starting RankServe: model %s, device %s, dtype %s, max length %d%s",
        settings.model,
        device,
        dtype,
        settings.max_length,
        f" (served as {settings.served_model_name})" if settings.served_model_name else "",
    )
    app = create_app(settings, mount_ui=ui, on_load_error=on_load_error)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout)),
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
        log_level=settings.log_level.lower(),
    )
    server = _Server(config, f"http://{_display_host(settings.host)}:{settings.port}", settings.body_timeout)
    # uvicorn re-raises the signal that stopped it once it has drained; with these no-op
    # handlers (restored by uvicorn after its own) a graceful SIGTERM/SIGINT ends with exit 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _after_shutdown)
    server.run(sockets=[sock])
    if load_failed:
        raise typer.Exit(code=1)


def _after_shutdown(signum: int, frame: object) -> None:
    """The server has already shut down gracefully; nothing is left to interrupt."""


def _resolve_target(settings: ServerSettings) -> tuple[str, str]:
    """Device and dtype as the engine will resolve "auto", for the first log line."""
    from rankserve.engine.loader import resolve_device, resolve_dtype
    from rankserve.errors import ModelLoadError

    try:
        device = resolve_device(settings.device)
        dtype = resolve_dtype(settings.dtype, device)
    except ModelLoadError as exc:
        fail(str(exc), 2)
    return str(device), str(dtype).removeprefix("torch.")


def _display_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Server(uvicorn.Server):
    """uvicorn's server, logging our "started" line once the socket is really listening.

    It also closes connections that have not sent a complete request head within
    ``header_timeout`` seconds: uvicorn bounds idle keep-alive connections but not a client
    that dribbles its headers (slowloris), and those would hold connection slots forever.
    """

    def __init__(self, config: uvicorn.Config, url: str, header_timeout: float = 0.0) -> None:
        super().__init__(config)
        self.url = url
        self.header_timeout = header_timeout
        self._reaper: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            log.info("HTTP server started on %s", self.url)
            if self.header_timeout > 0:
                self._reaper = asyncio.create_task(self._close_stalled_heads())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        await super().shutdown(sockets=sockets)

    async def _close_stalled_heads(self) -> None:
        first_seen: weakref.WeakKeyDictionary[object, float] = weakref.WeakKeyDictionary()
        while True:
            await asyncio.sleep(min(1.0, self.header_timeout / 4))
            now = time.monotonic()
            for conn in list(self.server_state.connections):
                if getattr(conn, "cycle", True) is not None:  # a request head arrived: the ASGI side times it
                    first_seen.pop(conn, None)
                    continue
                if now - first_seen.setdefault(conn, now) > self.header_timeout:
                    transport = getattr(conn, "transport", None)
                    if transport is not None:
                        log.info("closing a connection that sent no complete request in %g s", self.header_timeout)
                        transport.close()


def main() -> None:
    """``python -m rankserve.server``: the serve command without the rest of the CLI."""
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(context_settings=SERVE_CONTEXT)(serve)
    single()
