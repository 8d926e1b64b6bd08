"""IR metrics through well-kept libraries, never hand-rolled.

Two backends give identical numbers (tests check it):

* ``pytrec_eval`` — the C ``trec_eval`` every TREC/BEIR paper reports; instant to start.
* ``ranx`` — pure Python + numba; its first call JIT-compiles for ~40 s on a cold machine,
  so it is the fallback when ``pytrec_eval`` is not installed.

Runs are passed as *ordered lists*. Both libraries re-sort by score (and ``trec_eval`` breaks
ties by document id), so scores are replaced by strictly decreasing rank scores first: the
metrics then describe exactly the ranking that was shown to the user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from statistics import fmean

from rankserve.pipeline.data import Qrels

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@1", "ndcg@3", "ndcg@10", "mrr@10", "recall@10", "recall@100", "map")

_METRIC_RE = re.compile(r"^(ndcg|mrr|recall|map|precision|p)(?:@(\d+))?$")
_BINARY = {"mrr", "recall", "map", "precision", "p"}

RankedRun = Mapping[str, Sequence[tuple[str, float]] | Sequence[str]]


def _parse(metric: str) -> tuple[str, int | None]:
    match = _METRIC_RE.match(metric.lower())
    if not match:
        raise ValueError(f"unknown metric {metric!r}; use ndcg@k, mrr@k, recall@k, precision@k, map or map@k")
    name, k = match.group(1), match.group(2)
    if name == "p":
        name = "precision"
    if name in {"ndcg", "recall", "precision", "mrr"} and k is None and name != "ndcg":
        raise ValueError(f"metric {metric!r} needs a cutoff, e.g. {name}@10")
    return name, int(k) if k is not None else None


def _as_ids(ranked: Sequence[tuple[str, float]] | Sequence[str]) -> list[str]:
    return [item if isinstance(item, str) else item[0] for item in ranked]


def _rank_scores(ids: Sequence[str]) -> dict[str, float]:
    n = len(ids)
    out: dict[str, float] = {}
    for i, did in enumerate(ids):
        out.setdefault(did, float(n - i))
    return out


def available_backend() -> str:
    """``pytrec_eval`` if importable, else ``ranx``."""
    try:
        import pytrec_eval  # noqa: F401

        return "pytrec_eval"
    except ImportError:
        return "ranx"


def evaluate(
    qrels: Qrels,
    run: RankedRun,
    metrics: Sequence[str] = DEFAULT_METRICS,
    relevance_level: int = 1,
    backend: str = "auto",
) -> dict[str, dict[str, float]]:
    """Per-query metric values for every judged query: ``{qid: {metric: value}}``.

    A judged query missing from ``run`` scores 0 (``trec_eval -c`` semantics): a query the
    system could not answer must drag the mean down, not vanish from it. ``relevance_level`` is
    the grade from which binary metrics (MRR, recall, MAP, precision) count a document as
    relevant; nDCG always uses the graded gains. TREC DL reports binary metrics at level 2.
    """
    parsed = {m: _parse(m) for m in metrics}
    qrels = {q: {d: int(g) for d, g in r.items()} for q, r in qrels.items() if r}
    ids = {q: _as_ids(run.get(q, ())) for q in qrels}
    if backend == "auto":
        backend = available_backend()
    if backend == "pytrec_eval":
        values = _pytrec_eval(qrels, ids, parsed, relevance_level)
    elif backend == "ranx":
        values = _ranx(qrels, ids, parsed, relevance_level)
    else:
        raise ValueError(f"unknown metrics backend {backend!r}; use pytrec_eval or ranx")
    return {q: {m: float(values.get(q, {}).get(m, 0.0)) for m in metrics} for q in qrels}


def mean_metrics(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Macro average over queries, as trec_eval and BEIR report."""
    if not per_query:
        return {}
    names = next(iter(per_query.values())).keys()
    return {m: fmean(v[m] for v in per_query.values()) for m in names}


def _pytrec_eval(
    qrels: Qrels, ids: Mapping[str, list[str]], parsed: Mapping[str, tuple[str, int | None]], level: int
) -> dict[str, dict[str, float]]:
    import pytrec_eval

    out: dict[str, dict[str, float]] = {q: {} for q in qrels}
    full = {q: _rank_scores(v) for q, v in ids.items() if v}
    plain: dict[str, str] = {}  # our name -> trec_eval result key
    measures: set[str] = set()
    mrr_cutoffs: set[int] = set()
    for metric, (name, k) in parsed.items():
        if name == "mrr":
            mrr_cutoffs.add(k)  # trec_eval's recip_rank has no cutoff: truncate the run instead
            continue
        measure, key = {
            "ndcg": ("ndcg_cut", "ndcg_cut_{k}") if k else ("ndcg", "ndcg"),
            "recall": ("recall", "recall_{k}"),
            "precision": ("P", "P_{k}"),
            "map": ("map_cut", "map_cut_{k}") if k else ("map", "map"),
        }[name]
        measures.add(f"{measure}.{k}" if k else measure)
        plain[metric] = key.format(k=k)
    if measures and full:
        result = pytrec_eval.RelevanceEvaluator(qrels, measures, relevance_level=level).evaluate(full)
        for q, vals in result.items():
            out[q].update({metric: vals[key] for metric, key in plain.items()})
    for k in mrr_cutoffs:
        cut = {q: _rank_scores(v[:k]) for q, v in ids.items() if v}
        if not cut:
            continue
        result = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=level).evaluate(cut)
        for q, vals in result.items():
            for metric, (name, mk) in parsed.items():
                if name == "mrr" and mk == k:
                    out[q][metric] = vals["recip_rank"]
    return out


def _ranx(
    qrels: Qrels, ids: Mapping[str, list[str]], parsed: Mapping[str, tuple[str, int | None]], level: int
) -> dict[str, dict[str, float]]:
    from rankserve.extras import require

    ranx = require("ranx", "ranking metrics")
    answered = {q: _rank_scores(v) for q, v in ids.items() if v}
    if not answered:
        return {}
    names = {}
    for metric, (name, k) in parsed.items():
        ranx_name = f"{name}@{k}" if k else name
        if name in _BINARY and level > 1:
            ranx_name += f"-l{level}"
        names[metric] = ranx_name
    judged = ranx.Qrels({q: qrels[q] for q in answered})
    result = ranx.evaluate(judged, ranx.Run(answered), list(names.values()), return_mean=False)
    if len(names) == 1:  # ranx returns a bare array for a single metric
        result = {next(iter(names.values())): result}
    qids = list(ranx.Run(answered).keys())
    return {q: {metric: float(result[rname][i]) for metric, rname in names.items()} for i, q in enumerate(qids)}
