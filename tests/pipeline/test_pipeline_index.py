"""`rankserve index` / `search`: file reading (txt, md, html, pdf), chunking, search with and
without a reranker, and the fallback when the reranker server is gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankserve.pipeline.index import build_index, chunk_text, html_to_text
from rankserve.pipeline.search import load_index, search
from tests.pipeline.test_pipeline_retrieval import dense_model_missing


def make_pdf(path: Path, pages: list[str]) -> None:
    """A minimal valid PDF with one line of Helvetica text per page (pypdf can extract it)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        content_id = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>" % content_id
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    (root / "ops").mkdir()
    (root / "ops" / "cpu.txt").write_text(
        "服务器CPU使用率持续100%怎么办？先用top命令找到占用最高的进程，再用jstack分析线程堆栈。\n\n"
        "数据库连接池耗尽时，应检查慢查询和连接泄漏。",
        encoding="utf-8",
    )
    (root / "keys.md").write_text(
        "# API keys\n\nRotate the API key every 90 days. Create the new key in the admin console, "
        "deploy it, then revoke the old key.\n"
    )
    (root / "probes.html").write_text(
        "<html><head><title>Probes</title><style>p{color:red}</style></head><body>"
        "<p>Kubernetes liveness probes call the health endpoint.</p><script>var secret=1;</script>"
        "<div>Readiness probes wait until the model is loaded.</div></body></html>"
    )
    make_pdf(root / "manual.pdf", ["Installation guide for the reranker.", "Backups run nightly at 2am."])
    (root / "image.png").write_bytes(b"\x89PNG not text")  # unsupported: ignored
    return root


@pytest.fixture(scope="module")
def index_dir(docs_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index")
    build_index(docs_dir, out, chunk_size=80, overlap=20)
    return out


def test_html_to_text_drops_scripts_and_styles() -> None:
    text = html_to_text("<style>x{}</style><p>Hello&nbsp;<b>world</b></p><script>evil()</script><p>Bye</p>")
    assert text == "Hello\xa0world\n\nBye"


@pytest.mark.parametrize("size,overlap", [(100, 20), (50, 0), (64, 63)])
def test_chunks_cover_everything_within_size(size: int, overlap: int) -> None:
    text = "Lorem ipsum dolor sit amet. " * 40 + "中文句子没有空格。" * 30
    spans = chunk_text(text, size, overlap)
    covered = set()
    for start, end in spans:
        assert 0 < end - start <= size
        covered.update(range(start, end))
    assert covered >= {i for i, ch in enumerate(text) if not ch.isspace()}
    assert all(b[0] > a[0] for a, b in zip(spans, spans[1:], strict=False))
    if overlap:
        assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def test_index_layout_and_sources(index_dir: Path) -> None:
    meta = json.loads((index_dir / "meta.json").read_text())
    assert {f["source"] for f in meta["files"]} == {"ops/cpu.txt", "keys.md", "probes.html", "manual.pdf"}
    index = load_index(index_dir)
    assert len(index) == meta["chunks"]
    pdf_pages = {c["page"]: c["text"] for c in index.chunks if c["source"] == "manual.pdf"}
    assert pdf_pages == {1: "Installation guide for the reranker.", 2: "Backups run nightly at 2am."}
    html = " ".join(c["text"] for c in index.chunks if c["source"] == "probes.html")
    assert "liveness" in html and "secret" not in html and "color" not in html
    for chunk in index.chunks:
        if chunk["source"] == "keys.md":
            source_text = (Path(meta["root"]) / "keys.md").read_text()
            assert chunk["text"] == source_text[chunk["start"] : chunk["end"]].strip()


def test_search_first_stage_only(index_dir: Path) -> None:
    index = load_index(index_dir)
    hits = search(index, "服务器CPU使用率持续100%怎么办", top_n=2)
    assert hits[0]["source"] == "ops/cpu.txt" and "top命令" in hits[0]["text"]
    assert hits[0]["rerank_score"] is None and hits[0]["first_stage_rank"] == 1
    hits = search(index, "when do backups run?", top_n=1)
    assert hits[0]["source"] == "manual.pdf" and hits[0]["page"] == 2
    json.dumps(hits)  # plain, JSON-ready dicts for the UI


class LengthReranker:
    """Engine-shaped stand-in: prefers shorter passages (so the order visibly changes)."""

    def score(self, query: str, documents: list[str], instruction: str | None = None) -> list[float]:
        return [1.0 / len(d) for d in documents]


def test_search_reranks_top_k(index_dir: Path) -> None:
    index = load_index(index_dir)
    first = search(index, "API key probes", top_k=10, top_n=10)
    reranked = search(index, "API key probes", top_k=10, top_n=10, reranker=LengthReranker())
    assert sorted(h["chunk_id"] for h in first) == sorted(h["chunk_id"] for h in reranked)
    lengths = [len(h["text"]) for h in reranked]
    assert lengths == sorted(lengths) and all(h["rerank_score"] is not None for h in reranked)
    assert [h["rank"] for h in reranked] == list(range(1, len(reranked) + 1))


def test_search_falls_back_when_server_is_down(index_dir: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    index = load_index(index_dir)
    hits = search(index, "rotate the API key", top_n=3, reranker=url)
    assert hits and all(h["fallback"] for h in hits) and hits[0]["source"] == "keys.md"
    assert [h["first_stage_rank"] for h in hits] == list(range(1, len(hits) + 1))


def test_search_with_tiny_engine_model(index_dir: Path, tiny_qwen_dir: Path) -> None:
    hits = search(load_index(index_dir), "rotate the API key", top_k=5, top_n=5, reranker=str(tiny_qwen_dir))
    scores = [h["rerank_score"] for h in hits]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)


def test_index_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        build_index(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no text found"):
        build_index(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="not a RankServe index"):
        load_index(tmp_path / "empty")


def test_index_and_search_commands(docs_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rankserve.cli import app

    runner = CliRunner()
    out = tmp_path / "idx"
    result = runner.invoke(app, ["index", str(docs_dir), "--out", str(out), "--chunk-size", "120"])
    assert result.exit_code == 2 and "--overlap (200) must be smaller than --chunk-size (120)" in result.output
    result = runner.invoke(app, ["index", str(docs_dir), "--out", str(out), "--chunk-size", "120", "--overlap", "20"])
    assert result.exit_code == 0, result.output
    assert "indexed" in result.output and (out / "meta.json").exists()
    result = runner.invoke(app, ["search", str(out), "数据库连接池耗尽怎么办", "--top-n", "1", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 1 and hits[0]["source"] == "ops/cpu.txt" and "连接池" in hits[0]["text"]
    result = runner.invoke(app, ["search", str(tmp_path / "missing"), "q"])
    assert result.exit_code == 2 and "not a RankServe index" in result.output


def test_index_without_the_dense_extra_prints_the_install_hint(
    docs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from typer.testing import CliRunner

    from rankserve.cli import app

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # simulate "not installed"
    result = CliRunner().invoke(app, ["index", str(docs_dir), "--out", str(tmp_path / "idx"), "--dense"])
    assert result.exit_code == 2, result.output
    assert "pip install 'rankserve[dense]'" in result.output  # printed as text, not eaten as rich markup


def test_dense_index_gives_hybrid_search(docs_dir: Path, tmp_path: Path) -> None:
    from rankserve.pipeline.retrieval import DEFAULT_DENSE_MODEL, HybridRetriever

    if reason := dense_model_missing():
        pytest.skip(reason)
    meta = build_index(docs_dir, tmp_path / "idx", chunk_size=200, overlap=40, dense_model=DEFAULT_DENSE_MODEL)
    assert meta["dense_model"] == DEFAULT_DENSE_MODEL  # the name, not this machine's path
    index = load_index(tmp_path / "idx")
    assert isinstance(index.retriever(), HybridRetriever)
    hits = search(index, "replace the access token periodically", top_n=1)
    assert hits[0]["source"] == "keys.md"
    assert search(index, "backups", top_n=1, first_stage="bm25")[0]["page"] == 2
