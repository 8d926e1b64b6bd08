"""`rankserve index`: turn a folder of txt / md / html / pdf files into a searchable index.

Documents are cut into overlapping character windows. Characters, not words, because CJK text
has no spaces; cut points snap back to a sentence end or whitespace so passages read cleanly,
and the overlap keeps a sentence that straddles a cut findable from both sides. Every chunk
keeps its source file, PDF page and character span so answers can be cited.

Index layout (a directory)::

    meta.json      settings, file list, counts
    chunks.jsonl   one chunk per line: id, source, page, start, end, text
    bm25/          the bm25s index (terms from rankserve.pipeline.text.tokenize)
    dense.npy      optional: normalised embeddings for the dense / hybrid first stage
    dense.faiss    optional: a FAISS index over dense.npy for large corpora (see pipeline.vectors)

meta.json records the embedding model, the exact query and document prompts the documents were
encoded with (search must prepend the same query prompt), and which vector index was built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from rankserve.pipeline.retrieval import BM25Retriever, DenseRetriever
from rankserve.pipeline.vectors import choose_kind

INDEX_VERSION = 1
SUPPORTED_SUFFIXES = {".txt": "text", ".md": "text", ".markdown": "text", ".html": "html", ".htm": "html"}
SUPPORTED_SUFFIXES[".pdf"] = "pdf"

# Preferred cut points, best first: paragraph break, sentence end (Latin and CJK), any space.
_BOUNDARIES = (re.compile(r"\n\s*\n"), re.compile(r"[.!?。！？;；]\s*|\n"), re.compile(r"\s"))


@dataclass(frozen=True)
class Chunk:
    id: int
    source: str
    page: int | None
    start: int
    end: int
    text: str


class _HTMLText(HTMLParser):
    """Visible text of an HTML page; block elements become line breaks so sentences don't fuse."""

    _SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    _BLOCK = {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "section",
        "article",
        "pre",
        "td",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self._SKIP:
            self._skip_depth += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._SKIP and self._skip_depth:
            self._skip_depth -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip_depth:
            self.parts.append(data)

    def text(self) -> str:
        raw = "".join(self.parts)
        lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in raw.split("\n"))
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return parser.text()


def read_file(path: Path) -> list[tuple[int | None, str]]:
    """The text of one file as (page, text) segments: one per PDF page, one for other files."""
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind == "pdf":
        from rankserve.extras import require

        reader = require("pypdf", "PDF files").PdfReader(str(path))
        return [(i, page.extract_text() or "") for i, page in enumerate(reader.pages, 1)]
    raw = path.read_text(encoding="utf-8", errors="replace")
    return [(None, html_to_text(raw) if kind == "html" else raw)]


def iter_files(root: Path) -> Iterator[Path]:
    """Supported files under ``root`` (or ``root`` itself), in a stable sorted order."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES and not path.name.startswith("."):
            yield path


def _cut_point(text: str, start: int, end: int, min_end: int) -> int:
    """The best boundary in ``text[min_end:end]``; ``end`` itself when there is none."""
    window = text[min_end:end]
    for pattern in _BOUNDARIES:
        matches = list(pattern.finditer(window))
        if matches:
            return min_end + matches[-1].end()
    return end


def chunk_text(text: str, size: int = 1000, overlap: int = 200) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` covering ``text``: at most ``size`` long, consecutive
    spans overlapping by about ``overlap``; cut points snap to the last boundary in the final
    quarter of the window. Every character is in at least one span."""
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError("need size > 0 and 0 <= overlap < size")
    spans: list[tuple[int, int]] = []
    start, n = 0, len(text)
    while start < n:
        while start < n and text[start].isspace():
            start += 1
        if start >= n:
            break
        end = min(start + size, n)
        if end < n:
            end = _cut_point(text, start, end, start + (3 * size) // 4)
        spans.append((start, end))
        if end >= n:
            break
        nxt = max(end - overlap, start + 1)
        # Begin the next chunk at a word start rather than mid-word (Latin text only).
        space = text.rfind(" ", start + 1, nxt + 1)
        if overlap and space > start and nxt - space < overlap // 2:
            nxt = space + 1
        start = nxt
    return spans


def build_index(
    root: str | Path,
    out: str | Path,
    chunk_size: int = 1000,
    overlap: int = 200,
    dense_model: str | None = None,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    vector_index: str = "auto",
) -> dict:
    """Read, chunk and index everything under ``root`` into directory ``out``; returns meta.

    ``query_prompt`` / ``document_prompt`` override the embedding model's own prompts (``""``:
    none); ``vector_index`` is ``auto``, ``exact``, ``flat`` or ``ivf`` (pipeline.vectors)."""
    root, out = Path(root), Path(out)
    if not root.exists():
        raise FileNotFoundError(f"no such file or directory: {root}")
    chunks: list[Chunk] = []
    files: list[dict] = []
    for path in iter_files(root):
        source = str(path.relative_to(root)) if root.is_dir() else path.name
        before = len(chunks)
        try:
            segments = read_file(path)
        except Exception as exc:  # one broken PDF must not stop a folder
            files.append({"source": source, "chunks": 0, "error": f"{type(exc).__name__}: {exc}"})
            continue
        for page, text in segments:
            for start, end in chunk_text(text, chunk_size, overlap):
                passage = text[start:end].strip()
                if passage:
                    chunks.append(Chunk(len(chunks), source, page, start, end, passage))
        files.append({"source": source, "chunks": len(chunks) - before})
    if not chunks:
        raise ValueError(f"no text found under {root} (supported: {', '.join(sorted(SUPPORTED_SUFFIXES))})")
    if dense_model is not None:
        choose_kind(vector_index, len(chunks))  # a bad or unavailable choice fails before any embedding
    out.mkdir(parents=True, exist_ok=True)
    with (out / "chunks.jsonl").open("w", encoding="utf-8") as fh:
        for chunk in chunks:
            fh.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")
    texts = [c.text for c in chunks]
    BM25Retriever(texts).save(out / "bm25")
    dense_meta: dict = {}
    if dense_model is not None:
        dense = DenseRetriever(
            texts,
            model=dense_model,
            show_progress=True,
            query_prompt=query_prompt,
            document_prompt=document_prompt,
            vector_index=vector_index,
        )
        np.save(out / "dense.npy", dense.embeddings)  # meta keeps the name: resolved again at load
        dense_meta = {"dense_prompts": dense.prompts.to_meta(), "vector_index": dense.vectors.save(out)}
    meta = {
        "version": INDEX_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "root": str(root.resolve()),
        "chunk_size": chunk_size,
        "overlap": overlap,
        "chunks": len(chunks),
        "files": files,
        "dense_model": dense_model,
        **dense_meta,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta
