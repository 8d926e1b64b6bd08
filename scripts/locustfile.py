"""Load test for RankServe or any compatible reranking server, with Locust.

    locust -f scripts/locustfile.py --host http://localhost:8000                   # web UI on :8089
    locust -f scripts/locustfile.py --host http://localhost:8000 --headless -u 50 -r 10 -t 2m \\
        --docs 20 --api-key "$KEY" --csv load

Each simulated user sends rerank requests back to back (``--wait`` seconds apart): one query and
``--docs`` candidates of ``--doc-words`` words, drawn from a small bilingual vocabulary so that
requests differ. ``--format`` picks the API dialect, so the same file measures other servers too:
``simple`` (``/rerank`` with texts), ``cohere`` (``/v1/rerank``: Cohere, Jina, vLLM, Infinity),
``tei`` (``/rerank`` of Text Embeddings Inference; for RankServe use ``--host http://HOST:8000/tei``).
A reply without one score per document counts as a failure.
"""

from __future__ import annotations

import random

from locust import HttpUser, events, task

WORDS = (
    "server cpu usage memory latency cache index query search ranking model database network "
    "服务器 内存 延迟 缓存 索引 查询 搜索 排序 模型 数据库 网络 负载 扩容 限流"
).split()
PATHS = {"simple": "/rerank", "cohere": "/v1/rerank", "tei": "/rerank"}


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("rerank")
    group.add_argument("--format", choices=sorted(PATHS), default="simple", help="API dialect")
    group.add_argument("--docs", type=int, default=20, help="documents per request")
    group.add_argument("--doc-words", type=int, default=60, help="words per document")
    group.add_argument("--api-key", default="", help="sent as Authorization: Bearer KEY")
    group.add_argument("--model", default="", help="model name to send (cohere format)")
    group.add_argument("--wait", type=float, default=0.0, help="seconds between one user's requests")


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


class RerankUser(HttpUser):
    def wait_time(self) -> float:
        return self.environment.parsed_options.wait

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.format, self.docs, self.words = opts.format, opts.docs, opts.doc_words
        self.model = opts.model
        self.rng = random.Random()
        if opts.api_key:
            self.client.headers["Authorization"] = f"Bearer {opts.api_key}"

    def _body(self) -> dict:
        query = _text(self.rng, 8)
        docs = [_text(self.rng, self.words) for _ in range(self.docs)]
        if self.format == "cohere":
            body = {"query": query, "documents": docs, "return_documents": False}
            return {**body, "model": self.model} if self.model else body
        return {"query": query, "texts": docs}

    def _scored(self, reply: object) -> int:
        if self.format == "simple":
            return len(reply.get("scores", [])) if isinstance(reply, dict) else 0
        if self.format == "cohere":
            return len(reply.get("results", [])) if isinstance(reply, dict) else 0
        return len(reply) if isinstance(reply, list) else 0

    @task
    def rerank(self) -> None:
        name = f"{PATHS[self.format]} ({self.format}, {self.docs} docs)"
        with self.client.post(PATHS[self.format], json=self._body(), name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            try:
                scored = self._scored(response.json())
            except ValueError:
                response.failure("reply is not JSON")
                return
            if scored != self.docs:
                response.failure(f"{scored} scores for {self.docs} documents")
