"""Metrics: hand-computed answers, and pytrec_eval and ranx agree on them."""

from __future__ import annotations

import math

import pytest

from rankserve.pipeline.metrics import DEFAULT_METRICS, evaluate, mean_metrics

QRELS = {
    "q1": {"a": 3, "b": 1, "c": 0},
    "q2": {"d": 1},
    "q3": {"z": 2},  # judged, but the system returned nothing
}
RUN = {
    "q1": [("b", 0.5), ("x", 0.5), ("a", 0.5)],  # tied scores: list order must decide
    "q2": [(f"n{i}", 1.0 - i / 100) for i in range(10)] + [("d", 0.0)],  # relevant at rank 11
}

LOG2_3 = math.log2(3)
EXPECTED = {
    "q1": {
        "ndcg@1": 1 / 3,  # gain 1 at rank 1; ideal has gain 3 there
        "ndcg@3": (1 + 3 / 2) / (3 + 1 / LOG2_3),
        "ndcg@10": (1 + 3 / 2) / (3 + 1 / LOG2_3),
        "mrr@10": 1.0,
        "recall@10": 1.0,
        "recall@100": 1.0,
        "map": (1 / 1 + 2 / 3) / 2,
    },
    "q2": {
        "ndcg@1": 0.0,
        "ndcg@3": 0.0,
        "ndcg@10": 0.0,
        "mrr@10": 0.0,  # first hit at rank 11 is outside the cutoff
        "recall@10": 0.0,
        "recall@100": 1.0,
        "map": 1 / 11,
    },
    "q3": dict.fromkeys(DEFAULT_METRICS, 0.0),
}


@pytest.mark.parametrize("backend", ["pytrec_eval", "ranx"])
def test_known_answers(backend: str) -> None:
    if backend == "ranx":
        pytest.importorskip("ranx")
    per_query = evaluate(QRELS, RUN, backend=backend)
    for qid, expected in EXPECTED.items():
        for metric, value in expected.items():
            assert per_query[qid][metric] == pytest.approx(value, abs=1e-9), (backend, qid, metric)
    mean = mean_metrics(per_query)
    assert mean["map"] == pytest.approx((EXPECTED["q1"]["map"] + 1 / 11) / 3)


@pytest.mark.parametrize("backend", ["pytrec_eval", "ranx"])
def test_relevance_level_affects_binary_metrics_only(backend: str) -> None:
    if backend == "ranx":
        pytest.importorskip("ranx")
    per_query = evaluate(QRELS, RUN, relevance_level=2, backend=backend)["q1"]
    assert per_query["mrr@10"] == pytest.approx(1 / 3)  # "b" (grade 1) no longer counts
    assert per_query["map"] == pytest.approx(1 / 3)
    assert per_query["ndcg@3"] == pytest.approx(EXPECTED["q1"]["ndcg@3"])  # graded gains unchanged


def test_plain_id_lists_and_bad_metric_names() -> None:
    per_query = evaluate({"q": {"a": 1}}, {"q": ["x", "a"]}, metrics=["mrr@10", "precision@2", "ndcg"])
    assert per_query["q"] == pytest.approx({"mrr@10": 0.5, "precision@2": 0.5, "ndcg": 1 / math.log2(3)})
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate({"q": {"a": 1}}, {"q": ["a"]}, metrics=["f1@3"])
    with pytest.raises(ValueError, match="needs a cutoff"):
        evaluate({"q": {"a": 1}}, {"q": ["a"]}, metrics=["recall"])
