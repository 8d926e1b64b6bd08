"""HTML for the results, rendered here rather than with Gradio's table components.

Own HTML gives exact control over what the page shows (a bar inside the score cell, the
Top-1 row highlighted, full text behind a ``<details>``, rank-movement arrows) and stable
hooks for the browser tests: each row carries ``data-rank`` / ``data-index`` /
``data-score``, the best row has class ``top1``. Every user string goes through
:func:`html.escape`; documents are data, never markup.
"""

from __future__ import annotations

import html

from rankserve.ui.api import Ranking
from rankserve.ui.messages import FriendlyError

PREVIEW_CHARS = 120
CHART_MAX_BARS = 30


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """The first ``limit`` characters on one line, with an ellipsis when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def message_html(error: FriendlyError | None = None, note: str | None = None) -> str:
    """An inline, friendly message box (errors in red, notes in blue); empty when neither."""
    if error is not None:
        return f'<div class="rs-msg rs-error" role="alert" data-kind="{_e(error.kind)}">⚠ {_e(error.message)}</div>'
    if note:
        return f'<div class="rs-msg rs-note">{_e(note)}</div>'
    return ""


def shown_order(ranking: Ranking, top_n: int | None) -> list[int]:
    order = ranking.order()
    return order[:top_n] if top_n and top_n > 0 else order


def stats_html(ranking: Ranking, top_n: int | None) -> str:
    """Latency, tokens and counts in one line of chips."""
    n = len(ranking.documents)
    shown = len(shown_order(ranking, top_n))
    cut = sum(1 for t in ranking.truncated if t)
    chips = [
        ("latency", "延迟 Latency", f"{ranking.latency_s * 1000:.0f} ms"),
        ("tokens", "Tokens", f"{ranking.prompt_tokens:,}"),
        ("docs", "候选 Candidates", f"{n}" + (f" (top {shown})" if shown < n else "")),
        ("model", "模型 Model", ranking.model),
    ]
    if ranking.any_truncated:
        label = f"{cut}" if cut else "some"
        chips.append(("truncated", "截断 Truncated", label))
    body = "".join(
        f'<span class="rs-chip" data-stat="{key}"><b>{_e(name)}</b> {_e(value)}</span>' for key, name, value in chips
    )
    return f'<div class="rs-stats">{body}</div>'


def _movement(rank: int, before: int | None) -> str:
    """▲ moved up, ▼ moved down, = unchanged (``before`` is the rank under the other instruction)."""
    if before is None:
        return ""
    delta = before - rank
    if delta > 0:
        return f'<span class="rs-move up" data-move="{delta}" title="was #{before}">▲{delta}</span>'
    if delta < 0:
        return f'<span class="rs-move down" data-move="{delta}" title="was #{before}">▼{-delta}</span>'
    return '<span class="rs-move same" data-move="0" title="unchanged">＝</span>'


def _text_cell(text: str, truncated: bool | None) -> str:
    short = preview(text)
    flat = " ".join(text.split())
    if short == flat and "\n" not in text:
        body = f'<span class="rs-text">{_e(text)}</span>'
    else:
        body = f'<details class="rs-text"><summary>{_e(short)}</summary><div class="rs-full">{_e(text)}</div></details>'
    if truncated:
        body += '<span class="rs-trunc" title="cut to fit the token budget">✂ 截断 truncated</span>'
    elif truncated is None:
        body += '<span class="rs-trunc maybe" title="the server truncated some documents">✂?</span>'
    return f'<td class="rs-doc" dir="auto">{body}</td>'


def ranking_table(
    ranking: Ranking,
    top_n: int | None,
    *,
    table_id: str,
    before: Ranking | None = None,
    sources: list[str] | None = None,
) -> str:
    """The ranked table; with ``before``, each row also shows how far it moved versus that ranking.

    ``sources`` (document search) adds where each passage came from, and the index column
    becomes the first-stage rank.
    """
    rows = []
    for rank, index in enumerate(shown_order(ranking, top_n), 1):
        score = ranking.scores[index]
        arrow = _movement(rank, before.ranks[index]) if before is not None else ""
        cls = "rs-row top1" if rank == 1 else "rs-row"
        where = f'<td class="rs-index">{index}</td>'
        if sources is not None:
            where = f'<td class="rs-index">#{index + 1}</td><td class="rs-source">{_e(sources[index])}</td>'
        rows.append(
            f'<tr class="{cls}" data-rank="{rank}" data-index="{index}" data-score="{score:.6f}">'
            f'<td class="rs-rank">{"★ " if rank == 1 else ""}{rank}{arrow}</td>'
            f'<td class="rs-score"><div class="rs-bar"><span style="width:{max(score, 0.0) * 100:.1f}%"></span></div>'
            f"<code>{score:.4f}</code></td>{where}"
            f"{_text_cell(ranking.documents[index], ranking.truncated[index])}</tr>"
        )
    cols = "<th>原序号 Index</th>" if sources is None else "<th>初排 First stage</th><th>来源 Source</th>"
    head = f"<thead><tr><th>排名 Rank</th><th>分数 Score</th>{cols}<th>文本 Text</th></tr></thead>"
    return f'<table class="rs-table" id="{_e(table_id)}">{head}<tbody>{"".join(rows)}</tbody></table>'


def score_chart(ranking: Ranking, top_n: int | None) -> str:
    """A bar chart of the scores, best first (SVG: no plotting library, no JavaScript)."""
    order = shown_order(ranking, top_n)[:CHART_MAX_BARS]
    bar_h, gap, label_w, width = 22, 6, 70, 600
    height = len(order) * (bar_h + gap) + gap
    plot_w = width - label_w - 60
    parts = []
    for pos, index in enumerate(order):
        score = ranking.scores[index]
        y = gap + pos * (bar_h + gap)
        w = max(score, 0.0) * plot_w
        cls = "rs-chart-bar top1" if pos == 0 else "rs-chart-bar"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end" class="rs-chart-label">'
            f"#{pos + 1} · doc {index}</text>"
            f'<rect class="{cls}" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="3">'
            f"<title>{_e(preview(ranking.documents[index], 80))}</title></rect>"
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h * 0.7:.1f}" class="rs-chart-value">{score:.4f}</text>'
        )
    more = len(shown_order(ranking, top_n)) - len(order)
    note = f'<div class="rs-chart-note">+{more} more not drawn</div>' if more > 0 else ""
    return (
        f'<figure class="rs-chart" id="rs-chart"><figcaption>分数分布 Score chart</figcaption>'
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="score bar chart">'
        f"{''.join(parts)}</svg>{note}</figure>"
    )


def compare_summary(a: Ranking, b: Ranking) -> str:
    """How much instruction B changed the ranking of A: moved documents and the Top-1."""
    moved = sum(1 for ra, rb in zip(a.ranks, b.ranks) if ra != rb)
    top_a, top_b = a.order()[0], b.order()[0]
    top = f"Top-1 不变 unchanged (doc {top_a})" if top_a == top_b else f"Top-1 改变 changed: doc {top_a} → doc {top_b}"
    return (
        f'<div class="rs-stats" id="rs-compare-summary"><span class="rs-chip"><b>移动 Moved</b> '
        f'{moved} / {len(a.ranks)}</span><span class="rs-chip">{_e(top)}</span>'
        f'<span class="rs-chip"><b>A</b> {a.latency_s * 1000:.0f} ms · {a.prompt_tokens:,} tokens</span>'
        f'<span class="rs-chip"><b>B</b> {b.latency_s * 1000:.0f} ms · {b.prompt_tokens:,} tokens</span></div>'
    )
