"""A stand-in reranker server for the client's tests: FastAPI + uvicorn in a thread.

It speaks the Cohere/Jina ``/v1/rerank`` shape and plays a healthy, a slow, a failing and a
rejecting reranker, chosen by the query's prefix (``slow:``, ``fail500:``, ``bad400:``). The
client's fallback and circuit breaker are about HTTP, so they are tested over real sockets.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

SLOW_SECONDS = 1.5
TIMEOUT = 0.4
DOCS = ["cats are small", "the capital of france is paris", "paris paris france capital city"]


def stub_app(calls: list[str]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/rerank")
    async def rerank(request: Request) -> JSONResponse:
        body = await request.json()
        query: str = body["query"]
        calls.append(query)
        if query.startswith("slow:"):
            await asyncio.sleep(SLOW_SECONDS)
        if query.startswith("fail500:"):
            return JSONResponse({"error": {"message": "boom", "type": "server_error", "code": 500}}, 500)
        if query.startswith("bad400:") or not body["documents"]:
            msg = {"message": "query and documents cannot be empty", "type": "invalid_request", "code": 400}
            return JSONResponse({"error": msg}, 400)
        if request.headers.get("authorization") == "Bearer wrong":
            return JSONResponse({"error": {"message": "invalid API key", "type": "auth", "code": 401}}, 401)
        words = set(query.split(":")[-1].lower().split())
        scores = [len(words & set(d.lower().split())) / (len(words) or 1) for d in body["documents"]]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[: body.get("top_n") or None]
        results = [{"index": i, "relevance_score": scores[i]} for i in order]
        return JSONResponse({"id": "x", "model": "stub", "usage": {"prompt_tokens": 1}, "results": results})

    return app


class StubServer:
    """uvicorn in a background thread on a socket we bound first (no port race)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(stub_app(self.calls), log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> StubServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("stub server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
