"""The Ray side without a cluster: shipped deploy configs validate against Ray Serve's own
schema and build; ``--replicas`` without Ray is one clear line and exit 1; metrics merging."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile

import pytest
import yaml

from tests.support.paths import REPO

ROOT = REPO


def _apps(config: dict) -> list[dict]:
    return config["applications"]


@pytest.mark.parametrize("which", ["serve-config", "rayservice"])
def test_deploy_configs_validate_and_build(which):
    schema = pytest.importorskip("ray.serve.schema")
    from rankserve.scaleout.deploy import app_builder

    doc = yaml.safe_load((ROOT / "deploy" / f"{which}.yaml").read_text())
    if which == "rayservice":
        assert doc["kind"] == "RayService" and doc["apiVersion"] == "ray.io/v1"
        doc = yaml.safe_load(doc["spec"]["serveConfigV2"])
    config = schema.ServeDeploySchema.model_validate(doc) if hasattr(schema.ServeDeploySchema, "model_validate") \
        else schema.ServeDeploySchema.parse_obj(doc)  # fmt: skip
    (app,) = config.applications
    assert app.import_path == "rankserve.scaleout.deploy:app_builder"
    bound = app_builder(app.args)  # the args are real options: the app builds from them
    assert type(bound).__name__ == "Application"


def test_replicas_without_ray_is_one_line_and_exit_1(tmp_path):
    fake = tmp_path / "ray"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named ray (hidden for this test)')\n")
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT / 'src'}", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "rankserve.cli", "serve", "--replicas", "2", "--model", "whatever", "--port", "18777"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["error: --replicas needs the 'ray' extra: pip install 'rankserve[ray]'"]


def test_metrics_merge_labels_replicas_and_adds_totals():
    from prometheus_client.parser import text_string_to_metric_families

    from rankserve.scaleout.metrics import merge
    from rankserve.server.metrics import Metrics

    front, a, b = Metrics(), Metrics(), Metrics()
    front.requests.labels(route="/rerank", status="200").inc(5)
    a.pairs_scored.inc(3)
    b.pairs_scored.inc(4)
    a.queue_depth.set(2)
    text = merge(front.render(), {"r1": a.render(), "r2": b.render()}, ready=2, total=3).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip
    assert samples[("rankserve_pairs_scored_total", (("replica", "r1"),))] == 3
    assert samples[("rankserve_pairs_scored_total", (("replica", "all"),))] == 7
    assert samples[("rankserve_queue_depth", (("replica", "all"),))] == 2
    assert samples[("rankserve_requests_total", (("route", "/rerank"), ("status", "200")))] == 5
    assert ("rankserve_queue_depth", ()) not in samples  # the front end's idle batcher series are replaced
    assert samples[("rankserve_replicas_ready", ())] == 2 and samples[("rankserve_replicas_total", ())] == 3


def test_sigterm_drains_replicas_and_leaves_no_ray_behind(tiny_qwen_dir, tmp_path):
    """``rankserve serve --replicas 1``: requests in flight at SIGTERM are answered, exit 0, Ray is gone."""
    pytest.importorskip("ray.serve")
    import asyncio
    import signal
    import time

    import httpx

    from tests.support.server import free_port, server_env

    # This server's local Ray lives under its own temp root, so Ray processes of anything else running on
    # the machine (another test run, a developer's cluster) are not counted.
    ray_root = tempfile.mkdtemp(prefix="rsray", dir="/tmp")  # short: Ray's socket paths must stay < 108 bytes

    def ray_processes() -> set[str]:
        found = subprocess.run(["pgrep", "-f", f"{ray_root}/"], capture_output=True, text=True)
        return set(found.stdout.split())

    before = ray_processes()
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "rankserve.cli", "serve", "--replicas", "1", "--model", str(tiny_qwen_dir),
         "--device", "cpu", "--host", "127.0.0.1", "--port", str(port), "--no-ui", "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env=server_env({"PYTHONPATH": str(ROOT / "src"), "RAY_TMPDIR": ray_root}),  # noqa: E501
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.5)
        assert ray_processes(), "the server's local Ray should run under RAY_TMPDIR"
        docs = [f"document {j} about rivers and bridges " * 4 for j in range(30)]

        async def burst():
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                tasks = [asyncio.ensure_future(client.post("/rerank", json={"query": f"q{i}", "texts": docs}))
                         for i in range(6)]  # fmt: skip
                await asyncio.sleep(0.3)
                proc.send_signal(signal.SIGTERM)
                return await asyncio.gather(*tasks)

        responses = asyncio.run(burst())
        assert [r.status_code for r in responses] == [200] * 6
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    time.sleep(2)
    assert ray_processes() <= before  # nothing of this server's local Ray is left
    shutil.rmtree(ray_root, ignore_errors=True)
