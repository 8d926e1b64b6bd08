"""Loaders for labelled evaluation data and first-stage run files.

Two input shapes cover what users actually have:

* **BEIR** (a directory with ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``): one
  shared corpus, retrieval over all of it.
* **MTEB-style reranking JSONL** (one line per query: ``query``, ``positive[]``, ``negative[]``):
  each query brings its own candidate pool. The file lists positives first, so its order is not a
  fair first stage; :class:`Dataset.candidates` records the pool and the first stage re-orders it.

Both become one :class:`Dataset` so retrieval, reranking and metrics never care which it was.
TREC run files (``qid Q0 docid rank score tag``) load into the same ``{qid: [(docid, score)]}``
shape the retrievers produce.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

Run = dict[str, list[tuple[str, float]]]
"""Ranked candidates per query id, best first: ``{qid: [(doc_id, score), ...]}``."""

Qrels = dict[str, dict[str, int]]
"""Graded relevance judgements: ``{qid: {doc_id: grade}}``; grade >= 1 counts as relevant."""


@dataclass(frozen=True)
class Document:
    """One passage of a corpus."""

    id: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        """What retrievers and the reranker read: BEIR titles carry meaning (entity names)."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass
class Dataset:
    """Corpus, queries and judgements in one place, whatever file shape they came from."""

    name: str
    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: Qrels
    candidates: dict[str, list[str]] | None = None
    source: str = ""
    format: str = "beir"
    skipped: dict[str, int] = field(default_factory=dict)

    def subset(self, max_queries: int | None = None, query_ids: Sequence[str] | None = None) -> Dataset:
        """Keep a deterministic subset of queries (file order), e.g. for a quick smoke run."""
        ids = list(self.queries)
        if query_ids is not None:
            wanted = set(query_ids)
            missing = wanted - set(ids)
            if missing:
                raise ValueError(f"unknown query id(s): {', '.join(sorted(missing))}")
            ids = [q for q in ids if q in wanted]
        if max_queries is not None:
            ids = ids[:max_queries]
        keep = set(ids)
        return replace(
            self,
            queries={q: self.queries[q] for q in ids},
            qrels={q: r for q, r in self.qrels.items() if q in keep},
            candidates=None if self.candidates is None else {q: c for q, c in self.candidates.items() if q in keep},
        )


def _read_jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None


def _doc_id(obj: Mapping) -> str:
    for key in ("_id", "id", "doc_id", "docid"):
        if key in obj:
            return str(obj[key])
    raise ValueError(f"record has no _id/id field: {str(obj)[:80]}")


def load_qrels(path: str | Path) -> Qrels:
    """Read a BEIR qrels TSV (``query-id corpus-id score``, header optional) or a TREC qrels file
    (``qid 0 docid grade``)."""
    path = Path(path)
    qrels: Qrels = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if len(row) == 1:  # TREC qrels are space separated
                row = row[0].split()
            if not row:
                continue
            if len(row) == 4:  # TREC: qid iteration docid grade
                row = [row[0], row[2], row[3]]
            if len(row) != 3:
                raise ValueError(f"{path}:{lineno}: expected 'query-id corpus-id score', got {row!r}")
            qid, did, grade = row
            try:
                value = int(float(grade))
            except ValueError:
                if lineno == 1:  # header line
                    continue
                raise ValueError(f"{path}:{lineno}: relevance {grade!r} is not a number") from None
            qrels.setdefault(qid, {})[did] = value
    return qrels


def load_beir(directory: str | Path, split: str = "test") -> Dataset:
    """Load a BEIR dataset directory. Only queries that have judgements for ``split`` are kept,
    as BEIR and trec_eval do: a query without qrels cannot be scored."""
    directory = Path(directory)
    qrels_path = directory / "qrels" / f"{split}.tsv"
    for required in (directory / "corpus.jsonl", directory / "queries.jsonl", qrels_path):
        if not required.exists():
            raise FileNotFoundError(f"BEIR data needs {required.relative_to(directory)} in {directory}")
    corpus = {
        _doc_id(o): Document(_doc_id(o), str(o.get("text", "")), str(o.get("title") or ""))
        for o in _read_jsonl(directory / "corpus.jsonl")
    }
    all_queries = {_doc_id(o): str(o["text"]) for o in _read_jsonl(directory / "queries.jsonl")}
    qrels = load_qrels(qrels_path)
    queries = {q: t for q, t in all_queries.items() if q in qrels}
    missing_docs = sum(1 for r in qrels.values() for d in r if d not in corpus)
    return Dataset(
        name=directory.name,
        corpus=corpus,
        queries=queries,
        qrels={q: qrels[q] for q in queries},
        source=str(directory),
        format="beir",
        skipped={
            "queries_without_text": len(set(qrels) - set(all_queries)),
            "judged_docs_missing": missing_docs,
        },
    )


def _texts(value: object, field_name: str, lineno: int, path: Path) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ValueError(f"{path}:{lineno}: '{field_name}' must be a list of strings")
    out = []
    for item in value:
        text = item.get("text") if isinstance(item, Mapping) else item
        if not isinstance(text, str):
            raise ValueError(f"{path}:{lineno}: '{field_name}' entries must be strings or {{'text': ...}}")
        out.append(text)
    return out


def load_mteb_jsonl(path: str | Path) -> Dataset:
    """Load MTEB-style reranking data: one JSON object per line with ``query``, ``positive`` and
    ``negative`` (lists of passages). Identical passages share one document id."""
    path = Path(path)
    corpus: dict[str, Document] = {}
    by_text: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: Qrels = {}
    candidates: dict[str, list[str]] = {}

    def intern(text: str) -> str:
        if text not in by_text:
            did = f"d{len(by_text)}"
            by_text[text] = did
            corpus[did] = Document(did, text)
        return by_text[text]

    for lineno, obj in enumerate(_read_jsonl(path), 1):
        if "query" not in obj:
            raise ValueError(f"{path}:{lineno}: missing 'query'")
        qid = str(obj.get("query_id", obj.get("id", f"q{lineno}")))
        pos_texts = [t for t in _texts(obj.get("positive"), "positive", lineno, path) if t.strip()]
        neg_texts = [t for t in _texts(obj.get("negative"), "negative", lineno, path) if t.strip()]
        if not pos_texts:
            continue  # nothing relevant: every metric would be 0 for any ranking
        positives = [intern(t) for t in pos_texts]
        negatives = [intern(t) for t in neg_texts]
        queries[qid] = str(obj["query"])
        qrels[qid] = {d: 1 for d in positives}
        pool = list(dict.fromkeys(positives + negatives))
        candidates[qid] = pool
    name = path.parent.name if path.stem in {"test", "dev", "validation", "data"} else path.stem
    return Dataset(name, corpus, queries, qrels, candidates, source=str(path), format="mteb-jsonl")


def load_dataset(path: str | Path, split: str = "test") -> Dataset:
    """Detect the format: a directory with ``corpus.jsonl`` is BEIR; a ``.jsonl`` file (or a
    directory holding ``<split>.jsonl`` or exactly one ``.jsonl``) is MTEB-style reranking data."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    if path.is_dir():
        if (path / "corpus.jsonl").exists():
            return load_beir(path, split)
        if (path / f"{split}.jsonl").exists():
            return load_mteb_jsonl(path / f"{split}.jsonl")
        jsonl = sorted(path.glob("*.jsonl"))
        if len(jsonl) == 1:
            return load_mteb_jsonl(jsonl[0])
        raise ValueError(
            f"{path}: expected BEIR files (corpus.jsonl, queries.jsonl, qrels/{split}.tsv) "
            f"or one MTEB-style .jsonl file (query, positive, negative)"
        )
    return load_mteb_jsonl(path)


def load_run(path: str | Path) -> Run:
    """Read a TREC run file (``qid Q0 docid rank score tag``), best first per query.

    Ordered by score, ties by the file's rank column, as trec_eval would rank them."""
    path = Path(path)
    rows: dict[str, list[tuple[float, int, str]]] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise ValueError(f"{path}:{lineno}: expected 'qid Q0 docid rank score tag', got {line.strip()!r}")
            qid, _, did, rank, score, _tag = parts
            try:
                rows.setdefault(qid, []).append((float(score), int(rank), did))
            except ValueError:
                raise ValueError(f"{path}:{lineno}: rank and score must be numbers") from None
    run: Run = {}
    for qid, items in rows.items():
        items.sort(key=lambda r: (-r[0], r[1]))
        seen: dict[str, float] = {}
        for score, _, did in items:
            seen.setdefault(did, score)  # a duplicated doc keeps its best line
        run[qid] = list(seen.items())
    return run


def write_run(run: Mapping[str, Sequence[tuple[str, float]]], path: str | Path, tag: str = "rankserve") -> None:
    """Write a TREC run file, so results can go through trec_eval or back into ``--first-stage run:``."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for qid, ranked in run.items():
            for rank, (did, score) in enumerate(ranked, 1):
                fh.write(f"{qid} Q0 {did} {rank} {score:.6f} {tag}\n")
