"""What the page's buttons do: read the inputs, call the API, render HTML.

Kept apart from the layout (``app.py``) so each handler reads top to bottom. Every handler
is wrapped by :func:`friendly`: whatever goes wrong, the first output becomes a friendly
message box and the others are cleared; the page never shows Gradio's bare "Error" badge or
a stack trace (unexpected failures are logged with their traceback on the server side).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import gradio as gr

from rankserve.ui import inputs, messages, render
from rankserve.ui.api import RankServeAPI

log = logging.getLogger("rankserve.ui")

ApiFactory = Callable[[str | None], RankServeAPI]
FALLBACK_PRESETS = ["default", "web_search", "legal_compliance", "technical_accuracy", "step_by_step"]


def friendly(
    outputs: int, *, keep: bool = False
) -> Callable[[Callable[..., Awaitable[tuple]]], Callable[..., Awaitable[tuple]]]:
    """On failure, return (message box, "", "", ...) for a handler with ``outputs`` outputs;
    with ``keep`` the other outputs are left as they are instead of cleared."""

    def wrap(fn: Callable[..., Awaitable[tuple]]) -> Callable[..., Awaitable[tuple]]:
        @functools.wraps(fn)
        async def inner(*args: Any) -> tuple:
            try:
                return await fn(*args)
            except messages.FriendlyError as err:
                error = err
            except Exception as exc:  # noqa: BLE001 - the page must never show a traceback
                log.exception("UI action %s failed", fn.__name__)
                error = messages.unexpected(exc)
            rest = [gr.update() if keep else "" for _ in range(outputs - 1)]
            return (render.message_html(error), *rest)

        return inner

    return wrap


def top_n(value: Any) -> int | None:
    """A positive integer, or None for "all" (0, blank or nonsense)."""
    try:
        n = int(value or 0)
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def options(preset: str | None, custom: str | None, truncation: str | None, model: str | None) -> dict[str, Any]:
    """``RankServeAPI.rerank`` keywords; a custom instruction wins over the preset, as on the server."""
    return {
        "instruction": (custom or "").strip() or None,
        "preset": preset or None,
        "truncation": truncation or None,
        "model": model or None,
    }


class Handlers:
    """The actions of one page, bound to how it reaches the API and (optionally) an index."""

    def __init__(self, make_api: ApiFactory, index: Any = None) -> None:
        self.make_api = make_api
        self.index = index

    def api(self, key: str | None) -> RankServeAPI:
        return self.make_api((key or "").strip() or None)

    @friendly(5, keep=True)
    async def load_server(self, key: str | None) -> tuple[Any, ...]:
        """The server message box, then presets (twice) and models for the dropdowns.

        Runs when the page opens and when the key is entered, so a missing key or a dead
        server is reported before the user even clicks Run."""
        api = self.api(key)
        found = await api.presets()
        models = await api.models()
        names = found.names or FALLBACK_PRESETS
        return (
            "",
            gr.update(choices=names),
            gr.update(choices=names),
            gr.update(choices=models, value=models[0] if models else None, visible=len(models) > 1),
            found.instructions,
        )

    @friendly(4)
    async def run(
        self, q: str, typed: str, file: str | None, key: str, p: str, c: str, n: Any, trunc: str, m: str | None
    ) -> tuple[str, str, str, str]:
        text, docs = inputs.collect(q, typed, file)
        ranking = await self.api(key).rerank(text, docs, **options(p, c, trunc, m))
        limit = top_n(n)
        return (
            "",
            render.stats_html(ranking, limit),
            render.ranking_table(ranking, limit, table_id="rs-rank-table"),
            render.score_chart(ranking, limit),
        )

    @friendly(4)
    async def compare(
        self, q: str, typed: str, file: str | None, key: str, pa: str, ca: str, pb: str, cb: str, n: Any,
        trunc: str, m: str | None,
    ) -> tuple[str, str, str, str]:  # fmt: skip
        text, docs = inputs.collect(q, typed, file)
        api = self.api(key)
        a, b = await asyncio.gather(
            api.rerank(text, docs, **options(pa, ca, trunc, m)),
            api.rerank(text, docs, **options(pb, cb, trunc, m)),
        )
        same = options(pa, ca, trunc, m)["instruction"] or pa
        note = "A 与 B 的指令相同 A and B use the same instruction."
        limit = top_n(n)
        return (
            render.message_html(note=note) if same == (options(pb, cb, trunc, m)["instruction"] or pb) else "",
            render.compare_summary(a, b),
            render.ranking_table(a, limit, table_id="rs-table-a"),
            render.ranking_table(b, limit, table_id="rs-table-b", before=a),
        )

    @friendly(3)
    async def search(
        self, q: str, key: str, k: Any, n: Any, p: str, c: str, trunc: str, m: str | None
    ) -> tuple[str, str, str]:
        from rankserve.ui.search import search_and_rerank

        if not (q or "").strip():
            raise messages.empty_query()
        found = await search_and_rerank(self.api(key), self.index, q.strip(), top_n(k) or 50, **options(p, c, trunc, m))
        if found is None:
            return render.message_html(note="没有匹配的段落 No passage matched the question."), "", ""
        limit = top_n(n)
        table = render.ranking_table(
            found.ranking, limit, table_id="rs-search-table", before=found.first_stage, sources=found.sources
        )
        return "", render.stats_html(found.ranking, limit), table
