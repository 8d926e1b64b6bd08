"""Turn what the user typed or uploaded into the candidate list.

Same formats as ``rankserve rerank --docs-file``: ``.txt`` is one candidate per non-blank
line; ``.jsonl`` is a string or an object with ``text`` (or ``document`` / ``content``) per
line. A ``.jsonl`` candidate may contain newlines, which is why uploads are read here rather
than pasted into the one-per-line box.
"""

from __future__ import annotations

import json
from pathlib import Path

from rankserve.ui import messages

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


def parse_lines(text: str | None) -> list[str]:
    """One candidate per non-blank line, kept as typed (surrounding spaces stripped)."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def read_upload(path: str | Path | None) -> list[str]:
    """Candidates from an uploaded .txt or .jsonl file; a FriendlyError names the bad line."""
    if not path:
        return []
    path = Path(path)
    try:
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise messages.bad_file(f"{path.name} is larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
        raw = path.read_bytes()
    except OSError as exc:
        raise messages.bad_file(f"{path.name}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise messages.bad_file(f"{path.name} is not UTF-8 text") from exc
    if path.suffix.lower() != ".jsonl":
        return parse_lines(text)
    docs: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise messages.bad_file(f"{path.name} line {n} is not valid JSON ({exc.msg})") from exc
        if isinstance(item, dict):
            item = item.get("text", item.get("document", item.get("content")))
        if not isinstance(item, str):
            raise messages.bad_file(f'{path.name} line {n}: expected a string or an object with "text"')
        if item.strip():
            docs.append(item)
    return docs


def collect(query: str | None, typed: str | None, upload: str | Path | None) -> tuple[str, list[str]]:
    """The query and all candidates (typed lines first, then the file's), or a FriendlyError."""
    query = (query or "").strip()
    if not query:
        raise messages.empty_query()
    docs = parse_lines(typed) + read_upload(upload)
    if not docs:
        raise messages.no_candidates()
    return query, docs
