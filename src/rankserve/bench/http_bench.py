"""HTTP benchmark against a running ``rankserve serve``: latency under load and saturation throughput.

Open loop: requests arrive as a Poisson process at a fixed rate (as real traffic does, so a
slow server builds a queue instead of slowing the load down). The best rate is the highest
one whose p95 latency stays under the target with no errors. Saturation: a closed loop of
many concurrent clients, completed requests per second.
"""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import numpy as np

from rankserve.bench.workloads import Workload


async def _post(client: httpx.AsyncClient, url: str, payload: dict, latencies: list, errors: list) -> None:
    start = time.perf_counter()
    try:
        resp = await client.post(url, json=payload)
        if resp.status_code == 200:
            latencies.append((time.perf_counter() - start) * 1000)
        else:
            errors.append(resp.status_code)
    except httpx.HTTPError as exc:
        errors.append(type(exc).__name__)


def _summary(latencies: list[float], errors: list, seconds: float) -> dict:
    return {
        "completed": len(latencies),
        "errors": len(errors),
        "p50_ms": float(np.percentile(latencies, 50)) if latencies else float("nan"),
        "p95_ms": float(np.percentile(latencies, 95)) if latencies else float("nan"),
        "throughput_rps": len(latencies) / seconds,
    }


def _headers(api_key: str | None) -> dict:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


async def open_loop(base_url: str, workload: Workload, rate: float, duration: float, api_key: str | None) -> dict:
    payload = {"query": workload.query, "texts": workload.documents}
    latencies: list[float] = []
    errors: list = []
    rng = random.Random(0)
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers=_headers(api_key)) as client:
        tasks = []
        start = time.perf_counter()
        next_at = start
        while next_at - start < duration:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            tasks.append(asyncio.create_task(_post(client, f"{base_url}/rerank", payload, latencies, errors)))
            next_at += rng.expovariate(rate)
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - start
    return {"mode": "open", "rate_rps": rate, **_summary(latencies, errors, seconds)}


async def closed_loop(
    base_url: str, workload: Workload, concurrency: int, duration: float, api_key: str | None
) -> dict:
    payload = {"query": workload.query, "texts": workload.documents}
    latencies: list[float] = []
    errors: list = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits, headers=_headers(api_key)) as client:
        start = time.perf_counter()

        async def worker() -> None:
            while time.perf_counter() - start < duration:
                await _post(client, f"{base_url}/rerank", payload, latencies, errors)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return {"mode": "closed", "concurrency": concurrency, **_summary(latencies, errors, seconds)}


def sweep(
    base_url: str,
    workload: Workload,
    rates: list[float],
    duration: float,
    concurrency: int,
    api_key: str | None = None,
    target_p95_ms: float = 800.0,
    progress=lambda s: None,
) -> dict:
    """Open-loop rates in increasing order (stops after the first rate over target), then saturation."""
    rows = []
    for rate in sorted(rates):
        progress(f"HTTP open loop {rate:g} req/s")
        row = asyncio.run(open_loop(base_url, workload, rate, duration, api_key))
        rows.append(row)
        if row["errors"] or not row["p95_ms"] < target_p95_ms:
            break
    progress(f"HTTP closed loop, {concurrency} clients")
    saturation = asyncio.run(closed_loop(base_url, workload, concurrency, duration, api_key))
    good = [r["rate_rps"] for r in rows if not r["errors"] and r["p95_ms"] < target_p95_ms]
    return {
        "workload": workload.name,
        "docs_per_request": len(workload.documents),
        "target_p95_ms": target_p95_ms,
        "open_loop": rows,
        "best_rate_rps": max(good) if good else 0.0,
        "saturation": saturation,
    }
