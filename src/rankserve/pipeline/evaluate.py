"""`rankserve eval`: first stage → rerank top-k → metrics before and after.

The point is a trustworthy *lift* number on the user's own labelled data, so the same
judged queries, the same candidate lists and the same metric code are used for both sides;
only the order of the top ``k`` changes. Documents below ``k`` keep their first-stage order
beneath the reranked ones, which is how a deployed retrieve-then-rerank system behaves (and
why Recall@100 moves only when ``k`` >= 100).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from rankserve.pipeline.data import Dataset, Run, load_run
from rankserve.pipeline.metrics import DEFAULT_METRICS, available_backend, evaluate, mean_metrics
from rankserve.pipeline.retrieval import BM25Retriever, DenseRetriever, HybridRetriever, Retriever

KEY_METRIC = "ndcg@10"
FIRST_STAGES = ("bm25", "dense", "hybrid", "run:FILE")


class Scorer(Protocol):
    """Anything that gives one relevance score per document, in input order."""

    name: str

    def score(self, query: str, documents: Sequence[str]) -> list[float]: ...


class EngineScorer:
    """The in-process engine (``rankserve.engine.Reranker``)."""

    def __init__(self, reranker: Any, instruction: str | None = None, truncation: str = "head_tail") -> None:
        self.reranker, self.instruction, self.truncation = reranker, instruction, truncation
        self.name = str(getattr(reranker, "model_name", "reranker"))

    @classmethod
    def from_model(cls, model: str, instruction: str | None = None, **load_kwargs: Any) -> EngineScorer:
        from rankserve.engine import Reranker  # heavy (torch): import only when asked

        return cls(Reranker.from_pretrained(model, **load_kwargs), instruction)

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        results = self.reranker.score(query, list(documents), instruction=self.instruction, truncation=self.truncation)
        return [r.score for r in results]


class ServerScorer:
    """A running RankServe (or any Cohere/Jina-compatible) server through :class:`RerankClient`.

    Fallback is switched off: a silently un-reranked query would corrupt the measured lift."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        instruction: str | None = None,
    ):
        from rankserve.client import RerankClient

        self.client = RerankClient(base_url, api_key=api_key, timeout=timeout, fallback=None)
        self.instruction = instruction
        self.name = base_url

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        response = self.client.rerank(query, list(documents), instruction=self.instruction)
        self.name = response.model or self.name
        scores = [0.0] * len(documents)
        for result in response.results:
            scores[result.index] = float(result.relevance_score or 0.0)
        return scores


@dataclass
class EvalReport:
    """Everything `eval` measured; ``to_dict`` is the JSON report."""

    dataset: dict[str, Any]
    first_stage: str
    reranker: str | None
    top_k: int
    metrics: list[str]
    relevance_level: int
    backend: str
    first: dict[str, float]
    reranked: dict[str, float] | None
    per_query: dict[str, dict[str, Any]]
    timing: dict[str, float] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def lift(self) -> dict[str, dict[str, float | None]]:
        """Absolute and relative change per metric (relative is None when the base is 0)."""
        if self.reranked is None:
            return {}
        out: dict[str, dict[str, float | None]] = {}
        for m in self.metrics:
            base, new = self.first[m], self.reranked[m]
            out[m] = {"abs": new - base, "rel": (new - base) / base if base else None}
        return out

    def outcomes(self, metric: str = KEY_METRIC, eps: float = 1e-9) -> dict[str, list[str]]:
        """Query ids the reranker improved, hurt or left unchanged on ``metric``."""
        out: dict[str, list[str]] = {"wins": [], "losses": [], "ties": []}
        if self.reranked is None:
            return out
        for qid, row in self.per_query.items():
            delta = row["reranked"][metric] - row["first"][metric]
            out["wins" if delta > eps else "losses" if delta < -eps else "ties"].append(qid)
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lift"] = self.lift
        key = KEY_METRIC if KEY_METRIC in self.metrics else self.metrics[0]
        data["outcomes"] = {"metric": key, **{k: len(v) for k, v in self.outcomes(key).items()}}
        return data


def build_retriever(
    spec: str, texts: Sequence[str], dense_model: str | None = None, show_progress: bool = False
) -> Retriever:
    """Instantiate the first stage named on the command line (``run:FILE`` is handled apart)."""
    if spec == "bm25":
        return BM25Retriever(texts)
    if spec == "dense":
        return DenseRetriever(texts, model=dense_model, show_progress=show_progress)
    if spec == "hybrid":
        dense = DenseRetriever(texts, model=dense_model, show_progress=show_progress)
        return HybridRetriever(BM25Retriever(texts), dense)
    raise ValueError(f"unknown first stage {spec!r}; use one of {', '.join(FIRST_STAGES)}")


def first_stage_run(
    dataset: Dataset,
    spec: str,
    depth: int = 100,
    dense_model: str | None = None,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
    show_progress: bool = False,
) -> Run:
    """Candidates per query, best first. With per-query candidate pools (MTEB-style data) the
    whole pool is ranked; a run file is used as given, minus documents absent from the corpus."""
    if spec.startswith("run:"):
        loaded = load_run(spec[4:])
        return {q: [(d, s) for d, s in loaded.get(q, []) if d in dataset.corpus] for q in dataset.queries}
    ids = list(dataset.corpus)
    position = {d: i for i, d in enumerate(ids)}
    texts = [dataset.corpus[d].full_text for d in ids]
    retriever = build_retriever(spec, texts, dense_model, show_progress)
    run: Run = {}
    for qid in progress(list(dataset.queries)):
        pool = None
        k = depth
        if dataset.candidates is not None:
            pool = [position[d] for d in dataset.candidates.get(qid, [])]
            k = len(pool)
        hits = retriever.search(dataset.queries[qid], k, pool)
        run[qid] = [(ids[i], s) for i, s in hits]
    return run


def rerank_run(
    dataset: Dataset,
    run: Run,
    scorer: Scorer,
    top_k: int,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> tuple[Run, int]:
    """Rerank each query's top ``top_k``; the tail keeps first-stage order below them.
    Returns the new run and the number of documents scored."""
    out: Run = {}
    scored = 0
    for qid in progress(list(run)):
        head, tail = run[qid][:top_k], run[qid][top_k:]
        if not head:
            out[qid] = []
            continue
        scores = scorer.score(dataset.queries[qid], [dataset.corpus[d].full_text for d, _ in head])
        order = sorted(range(len(head)), key=lambda i: -scores[i])  # stable: ties keep first-stage order
        out[qid] = [(head[i][0], float(scores[i])) for i in order] + tail
        scored += len(head)
    return out, scored


def run_eval(
    dataset: Dataset,
    first_stage: str = "bm25",
    scorer: Scorer | None = None,
    top_k: int = 100,
    metrics: Sequence[str] = DEFAULT_METRICS,
    relevance_level: int = 1,
    dense_model: str | None = None,
    backend: str = "auto",
    progress: Callable[[Iterable, str], Iterable] | None = None,
) -> tuple[EvalReport, Run, Run | None]:
    """Measure the first stage and, given a scorer, the reranked ranking. Returns the report
    and both runs (for TREC run files)."""
    wrap = (lambda desc: lambda it: progress(it, desc)) if progress else (lambda desc: lambda it: it)
    depth = max([top_k, *(int(m.split("@")[1]) for m in metrics if "@" in m)])
    t0 = time.perf_counter()
    first_run = first_stage_run(
        dataset, first_stage, depth, dense_model, wrap("first stage"), show_progress=progress is not None
    )
    t1 = time.perf_counter()
    first_pq = evaluate(dataset.qrels, first_run, metrics, relevance_level, backend)
    reranked_run, reranked_pq, scored = None, None, 0
    if scorer is not None:
        reranked_run, scored = rerank_run(dataset, first_run, scorer, top_k, wrap("rerank"))
        reranked_pq = evaluate(dataset.qrels, reranked_run, metrics, relevance_level, backend)
    t2 = time.perf_counter()
    per_query = {
        q: {
            "query": dataset.queries[q],
            "first": first_pq[q],
            **({"reranked": reranked_pq[q]} if reranked_pq else {}),
        }
        for q in first_pq
    }
    report = EvalReport(
        dataset={
            "name": dataset.name,
            "source": dataset.source,
            "format": dataset.format,
            "queries": len(dataset.queries),
            "documents": len(dataset.corpus),
        },
        first_stage=first_stage,
        reranker=scorer.name if scorer else None,
        top_k=top_k,
        metrics=list(metrics),
        relevance_level=relevance_level,
        backend=available_backend() if backend == "auto" else backend,
        first=mean_metrics(first_pq),
        reranked=mean_metrics(reranked_pq) if reranked_pq else None,
        per_query=per_query,
        timing={
            "first_stage_s": round(t1 - t0, 3),
            "rerank_s": round(t2 - t1, 3),
            "documents_reranked": scored,
            "documents_per_s": round(scored / (t2 - t1), 2) if scored and t2 > t1 else 0.0,
        },
    )
    return report, first_run, reranked_run
