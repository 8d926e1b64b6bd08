"""RankServe on Ray Serve: a local Ray cluster of two simulated nodes, two CPU scoring replicas
of the tiny model, the real HTTP front end. Every dialect answers as the single-process server
does; concurrent requests get their own scores; both replicas work; a replica killed with
SIGKILL under load costs no request more than a clean 503/504, and comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from tests.support.server import ServerProcess, free_port, metric_value

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

QUERY = "what is the capital of France"
DOCS = ["Paris is the capital of France.", "Berlin is in Germany.", "The Eiffel Tower is in Paris.", "Bananas."]
BODIES = {
    "/rerank": [{"query": QUERY, "texts": DOCS}, {"query": QUERY, "documents": DOCS, "top_n": 2}],
    "/v1/rerank": [{"query": QUERY, "documents": DOCS, "return_documents": True}],
    "/v2/rerank": [{"model": None, "query": QUERY, "documents": DOCS, "top_n": 3}],
    "/score": [{"text_1": QUERY, "text_2": DOCS}],
    "/v1/score": [{"text_1": [QUERY, "germany"], "text_2": DOCS[:2]}],
}
VOLATILE = {"id", "created", "took", "meta", "usage"}


@pytest.fixture(scope="module")
def cluster(tiny_qwen_dir):
    from ray.cluster_utils import Cluster

    from rankserve.scaleout import deploy
    from rankserve.server.settings import ServerSettings

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    nodes.add_node(num_cpus=1)
    ray.init(address=nodes.address, namespace=deploy.APP_NAME)
    port = free_port()
    settings = ServerSettings(
        model=str(tiny_qwen_dir), host="127.0.0.1", port=port, device="cpu", request_timeout=30, log_level="warning"
    )
    try:
        deploy.start(settings, deploy.ScaleSettings(replicas=2, cpus_per_replica=0.5))
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: health(url).get("replicas", {}).get("ready") == 2, 180)
        yield url
    finally:
        try:
            deploy.stop(local_cluster=True)
        finally:
            nodes.shutdown()


@pytest.fixture(scope="module")
def single(tiny_qwen_dir, tmp_path_factory):
    server = ServerProcess(tiny_qwen_dir, tmp_path_factory.mktemp("single") / "server.log", "--request-timeout", "30")
    try:
        yield server.wait_ready().url
    finally:
        server.stop()


def health(url: str) -> dict:
    try:
        return httpx.get(url + "/health", timeout=5).json()
    except (httpx.TransportError, ValueError):
        return {}


def wait_for(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"not true after {timeout} s")


def comparable(body):
    if isinstance(body, dict):
        return {k: comparable(v) for k, v in body.items() if k not in VOLATILE}
    if isinstance(body, list):
        return [comparable(v) for v in body]
    if isinstance(body, float):
        return round(body, 5)
    return body


def test_every_dialect_answers_as_the_single_process_server(cluster, single, tiny_qwen_dir):
    for path, bodies in BODIES.items():
        for body in bodies:
            if "model" in body:
                body = {**body, "model": str(tiny_qwen_dir)}
            ours = httpx.post(cluster + path, json=body, timeout=30)
            want = httpx.post(single + path, json=body, timeout=30)
            assert ours.status_code == want.status_code == 200, (path, ours.text)
            assert comparable(ours.json()) == comparable(want.json()), path
            assert set(ours.json()) == set(want.json())  # the same shape, volatile fields included
            assert ours.headers.get("x-request-id")
    bad = httpx.post(cluster + "/rerank", json={"query": QUERY, "texts": ["ok", ""]}, timeout=30)
    assert bad.status_code == 400 and "texts[1]" in bad.json()["error"]["message"]
    for path in ("/v1/models", "/v1/presets"):
        assert comparable(httpx.get(cluster + path).json()) == comparable(httpx.get(single + path).json()), path
    body = health(cluster)
    assert body["status"] == "healthy" and body["replicas"]["ready"] == body["replicas"]["total"] == 2


def test_concurrent_mixed_requests_each_get_their_own_scores_on_both_replicas(cluster, single):
    requests = [(f"question {i} about {w}", [f"{w} document {j} {i}" for j in range(1 + i % 5)])
                for i, w in enumerate(["paris", "cpu", "bananas", "rivers", "music"] * 10)]  # fmt: skip
    want = [httpx.post(single + "/rerank", json={"query": q, "texts": d}, timeout=30).json()["scores"]
            for q, d in requests]  # fmt: skip

    async def burst():
        async with httpx.AsyncClient(base_url=cluster, timeout=60) as client:
            return await asyncio.gather(*(client.post("/rerank", json={"query": q, "texts": d}) for q, d in requests))

    got = asyncio.run(burst())
    assert all(r.status_code == 200 for r in got), [r.text for r in got if r.status_code != 200][:2]
    for response, scores in zip(got, want):
        assert response.json()["scores"] == pytest.approx(scores, abs=1e-5)
    time.sleep(2.5)  # the replicas report their metrics every second
    text = httpx.get(cluster + "/metrics").text
    per_replica = [line for line in text.splitlines() if line.startswith("rankserve_pairs_scored_total{")]
    workers = [line for line in per_replica if 'replica="all"' not in line and float(line.split()[-1]) > 0]
    assert len(workers) == 2, per_replica  # Ray Serve's routing spread the work over both replicas
    total = metric_value(text, "rankserve_pairs_scored_total", replica="all")
    assert total == sum(float(line.split()[-1]) for line in per_replica if 'replica="all"' not in line)
    assert metric_value(text, "rankserve_replicas_ready") == 2
    assert 'rankserve_requests_total{route="/rerank",status="200"}' in text  # the front end's own series


def test_killed_replica_costs_clean_errors_only_and_comes_back(cluster):
    from rankserve.scaleout.hub import get_hub

    reports = ray.get(get_hub("rankserve").snapshot.remote())
    assert len(reports) == 2
    victim = sorted(reports.values(), key=lambda r: r["pid"])[0]["pid"]
    docs = [f"document {j} about paris and its many monuments " * 3 for j in range(12)]

    async def burst():
        async with httpx.AsyncClient(base_url=cluster, timeout=60) as client:
            calls = [client.post("/rerank", json={"query": f"q{i}", "texts": docs}) for i in range(30)]
            tasks = [asyncio.ensure_future(c) for c in calls]
            await asyncio.sleep(0.5)
            os.kill(victim, signal.SIGKILL)
            return await asyncio.gather(*tasks)

    started = time.monotonic()
    responses = asyncio.run(burst())
    assert time.monotonic() - started < 30 + 10  # never past --request-timeout
    for r in responses:
        assert r.status_code in (200, 503, 504), r.text
        if r.status_code != 200:
            assert r.json()["error"]["message"] and "Traceback" not in r.text
        if r.status_code == 503:
            assert int(r.headers["Retry-After"]) >= 1
    assert sum(r.status_code == 200 for r in responses) >= len(responses) // 2
    seen: list[dict] = []
    wait_for(lambda: seen.append(health(cluster)) or seen[-1].get("replicas", {}).get("ready", 0) < 2, 30)
    assert seen[-1]["replicas"]["total"] == 2  # /health says one of two is missing while it is down
    wait_for(lambda: health(cluster).get("replicas", {}).get("ready") == 2, 180)
    after = httpx.post(cluster + "/rerank", json={"query": QUERY, "texts": DOCS}, timeout=30)
    assert after.status_code == 200
