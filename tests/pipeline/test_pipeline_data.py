"""Loaders: BEIR directories, MTEB-style reranking JSONL, TREC run files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankserve.pipeline.data import load_dataset, load_qrels, load_run, write_run


def write_beir(root: Path, header: bool = True) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = [
        {"_id": "d1", "title": "Paris", "text": "Paris is the capital of France."},
        {"_id": "d2", "title": "", "text": "Berlin is the capital of Germany."},
        {"_id": "d3", "text": "Cats sleep a lot."},
    ]
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    queries = [{"_id": "q1", "text": "capital of france"}, {"_id": "q2", "text": "unjudged query"}]
    queries.append({"_id": "q3", "text": "sleepy animals"})
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    rows = ["q1\td1\t2", "q1\td2\t0", "q3\td3\t1"]
    (root / "qrels" / "test.tsv").write_text(("query-id\tcorpus-id\tscore\n" if header else "") + "\n".join(rows))
    return root


@pytest.mark.parametrize("header", [True, False])
def test_load_beir(tmp_path: Path, header: bool) -> None:
    ds = load_dataset(write_beir(tmp_path / "mini", header))
    assert ds.format == "beir" and ds.name == "mini"
    assert list(ds.queries) == ["q1", "q3"]  # q2 has no judgements
    assert ds.qrels == {"q1": {"d1": 2, "d2": 0}, "q3": {"d3": 1}}
    assert ds.corpus["d1"].full_text == "Paris\nParis is the capital of France."
    assert ds.corpus["d2"].full_text == "Berlin is the capital of Germany."
    assert list(ds.subset(max_queries=1).queries) == ["q1"]
    assert list(ds.subset(query_ids=["q3"]).qrels) == ["q3"]
    with pytest.raises(ValueError, match="unknown query id"):
        ds.subset(query_ids=["nope"])


def test_beir_missing_files_named(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "mini")
    (root / "qrels" / "test.tsv").unlink()
    with pytest.raises(FileNotFoundError, match=r"qrels/test.tsv"):
        load_dataset(root)


def test_trec_qrels_format(tmp_path: Path) -> None:
    path = tmp_path / "qrels.txt"
    path.write_text("q1 0 d1 2\nq1 0 d2 0\n")
    assert load_qrels(path) == {"q1": {"d1": 2, "d2": 0}}


def test_load_mteb_jsonl(tmp_path: Path) -> None:
    lines = [
        {"query": "capital of france", "positive": ["Paris is the capital."], "negative": ["Berlin.", "Rome."]},
        {"query": "no positives", "positive": [], "negative": ["x"]},
        {"query_id": "cats", "query": "cats", "positive": [{"text": "Cats purr."}], "negative": ["Berlin."]},
    ]
    path = tmp_path / "test.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines))
    ds = load_dataset(tmp_path)  # a directory holding test.jsonl
    assert ds.format == "mteb-jsonl"
    assert list(ds.queries) == ["q1", "cats"]
    assert len(ds.corpus) == 4  # "Berlin." is shared, stored once; skipped lines add nothing
    assert ds.candidates["q1"] == ["d0", "d1", "d2"] and ds.qrels["q1"] == {"d0": 1}
    assert ds.candidates["cats"] == ["d3", "d1"] and ds.qrels["cats"] == {"d3": 1}


def test_mteb_bad_line_named(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"query": "a", "positive": ["p"]}\n{not json}\n')
    with pytest.raises(ValueError, match="data.jsonl:2"):
        load_dataset(path)


def test_run_file_roundtrip_and_ordering(tmp_path: Path) -> None:
    path = tmp_path / "bm25.run"
    path.write_text("q1 Q0 d2 2 1.5 bm25\nq1 Q0 d1 1 3.0 bm25\nq1 Q0 d3 3 1.5 bm25\nq2 Q0 d9 1 0.1 bm25\n")
    run = load_run(path)
    assert run == {"q1": [("d1", 3.0), ("d2", 1.5), ("d3", 1.5)], "q2": [("d9", 0.1)]}
    write_run(run, tmp_path / "out.run", tag="t")
    assert load_run(tmp_path / "out.run") == run
    (tmp_path / "bad.run").write_text("q1 d1 1.0\n")
    with pytest.raises(ValueError, match="expected 'qid Q0 docid rank score tag'"):
        load_run(tmp_path / "bad.run")
