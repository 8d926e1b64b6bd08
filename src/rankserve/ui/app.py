"""The Gradio page: inputs on top, then tabs for ranking and for comparing two instructions.

The page holds no model: every action is an HTTP call to a RankServe server through
:class:`~rankserve.ui.api.RankServeAPI`, built per click by ``make_api(key)`` with the API key
the user typed. That is what lets the same page run mounted in the server (``/ui``) or alone
(``rankserve ui --api-url``), and why the mounted page cannot get round the server's API key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from rankserve.ui import inputs, messages, render
from rankserve.ui.api import Presets, Ranking, RankServeAPI
from rankserve.ui.examples import EXAMPLES

log = logging.getLogger("rankserve.ui")

ApiFactory = Callable[[str | None], RankServeAPI]

CSS = (Path(__file__).with_name("style.css")).read_text(encoding="utf-8")
FALLBACK_PRESETS = ["default", "web_search", "legal_compliance", "technical_accuracy", "step_by_step"]
TRUNCATION_CHOICES = [("head_tail（默认 default）", "head_tail"), ("head", "head"), ("chunks", "chunks")]


def theme() -> gr.themes.Base:
    """Local fonts only: the default theme links Google Fonts, which closed networks cannot reach."""
    return gr.themes.Soft(
        font=["Noto Sans CJK SC", "Noto Sans", "DejaVu Sans", "system-ui", "sans-serif"],
        font_mono=["Noto Sans Mono CJK SC", "DejaVu Sans Mono", "monospace"],
    )


def _top_n(value: Any) -> int | None:
    try:
        n = int(value or 0)
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def _instruction(custom: str | None) -> str | None:
    return (custom or "").strip() or None


async def _rank(
    make_api: ApiFactory, key: str | None, query: str, docs: list[str], preset: str | None, custom: str | None,
    truncation: str | None, model: str | None,
) -> Ranking:  # fmt: skip
    api = make_api((key or "").strip() or None)
    return await api.rerank(
        query, docs, instruction=_instruction(custom), preset=preset or None, truncation=truncation, model=model or None
    )


def build_blocks(make_api: ApiFactory, *, server_label: str) -> gr.Blocks:
    """The whole page. ``server_label`` tells the user which server the page talks to."""
    with gr.Blocks(title="RankServe UI", analytics_enabled=False) as demo:
        presets_state = gr.State({})
        gr.HTML(
            '<div class="rs-header"><h1>RankServe 重排序 Reranker</h1>'
            f"<p>检查排序结果 Check how the reranker orders your candidates · 服务器 Server: "
            f"<code>{render._e(server_label)}</code></p></div>"
        )
        server_msg = gr.HTML(elem_id="rs-server-msg")
        with gr.Row():
            with gr.Column(scale=3):
                query = gr.Textbox(
                    label="查询 Query", lines=2, elem_id="rs-query", placeholder="服务器CPU使用率持续100%怎么办"
                )
                candidates = gr.Textbox(
                    label="候选文本（每行一个） Candidates (one per line)",
                    lines=8,
                    max_lines=20,
                    elem_id="rs-candidates",
                )
                upload = gr.File(
                    label="或上传文件 Or upload .txt / .jsonl",
                    file_types=[".txt", ".jsonl"],
                    height=150,
                    elem_id="rs-upload",
                )
            with gr.Column(scale=2):
                api_key = gr.Textbox(
                    label="API 密钥 API key",
                    type="password",
                    placeholder="仅当服务器设置了密钥时需要 Only if the server has one",
                    elem_id="rs-api-key",
                )
                preset = gr.Dropdown(
                    FALLBACK_PRESETS,
                    value="default",
                    label="指令预设 Instruction preset",
                    allow_custom_value=True,
                    elem_id="rs-preset",
                )
                custom = gr.Textbox(
                    label="自定义指令（优先于预设） Custom instruction (overrides the preset)",
                    lines=2,
                    elem_id="rs-instruction",
                )
                with gr.Row():
                    top_n = gr.Number(
                        value=0, precision=0, minimum=0, label="Top N（0 = 全部 all）", elem_id="rs-top-n"
                    )
                    truncation = gr.Radio(
                        TRUNCATION_CHOICES, value="head_tail", label="截断策略 Truncation", elem_id="rs-truncation"
                    )
                model = gr.Dropdown([], value=None, label="模型 Model", visible=False, elem_id="rs-model")
        gr.Examples(
            [e.row() for e in EXAMPLES],
            inputs=[query, candidates, preset, custom],
            example_labels=[e.label for e in EXAMPLES],
            label="示例 Examples",
        )
        with gr.Tabs():
            with gr.Tab("排序 Rank", id="rank"):
                run_btn = gr.Button("排序 Run", variant="primary", elem_id="rs-run")
                rank_msg = gr.HTML(elem_id="rs-message")
                rank_stats = gr.HTML(elem_id="rs-stats")
                with gr.Row():
                    with gr.Column(scale=3):
                        rank_table = gr.HTML(elem_id="rs-results")
                    with gr.Column(scale=2):
                        rank_chart = gr.HTML(elem_id="rs-chart-box")
            with gr.Tab("对比指令 Compare instructions", id="compare"):
                gr.Markdown(
                    "同一查询与候选，在两种指令下排序；B 栏箭头表示相对 A 的名次变化。 "
                    "The same query and candidates under two instructions; arrows in B show each "
                    "document's move versus A. **A** = the instruction chosen above."
                )
                with gr.Row():
                    preset_b = gr.Dropdown(
                        FALLBACK_PRESETS,
                        value="technical_accuracy",
                        label="指令 B 预设 Instruction B preset",
                        allow_custom_value=True,
                        elem_id="rs-preset-b",
                    )
                    custom_b = gr.Textbox(
                        label="指令 B 自定义 Instruction B custom text", lines=2, elem_id="rs-instruction-b"
                    )
                compare_btn = gr.Button("对比 Compare", variant="primary", elem_id="rs-compare")
                compare_msg = gr.HTML(elem_id="rs-compare-message")
                compare_stats = gr.HTML(elem_id="rs-compare-stats")
                with gr.Row():
                    with gr.Column():
                        gr.Markdown("**A**")
                        table_a = gr.HTML(elem_id="rs-compare-a")
                    with gr.Column():
                        gr.Markdown("**B** (▲ 上升 up · ▼ 下降 down · ＝ 不变 same)")
                        table_b = gr.HTML(elem_id="rs-compare-b")

        async def load_server(key: str | None) -> tuple[Any, ...]:
            """Presets and models from the server; failures become a message, not a broken page."""
            api = make_api((key or "").strip() or None)
            try:
                found: Presets = await api.presets()
                models = await api.models()
            except messages.FriendlyError as err:
                return gr.update(), gr.update(), gr.update(), {}, render.message_html(err)
            except Exception as exc:  # noqa: BLE001 - the page must stay usable
                log.exception("loading presets/models failed")
                return gr.update(), gr.update(), gr.update(), {}, render.message_html(messages.unexpected(exc))
            names = found.names or FALLBACK_PRESETS
            model_update = gr.update(choices=models, value=models[0] if models else None, visible=len(models) > 1)
            return (
                gr.update(choices=names),
                gr.update(choices=names),
                model_update,
                found.instructions,
                "",
            )

        async def run(
            q: str, typed: str, file: str | None, key: str, p: str, c: str, n: Any, trunc: str, m: str | None
        ) -> tuple[str, str, str, str]:
            try:
                text, docs = inputs.collect(q, typed, file)
                ranking = await _rank(make_api, key, text, docs, p, c, trunc, m)
            except messages.FriendlyError as err:
                return render.message_html(err), "", "", ""
            except Exception as exc:  # noqa: BLE001 - never a stack trace in the page
                log.exception("rerank from the UI failed")
                return render.message_html(messages.unexpected(exc)), "", "", ""
            limit = _top_n(n)
            return (
                "",
                render.stats_html(ranking, limit),
                render.ranking_table(ranking, limit, table_id="rs-rank-table"),
                render.score_chart(ranking, limit),
            )

        async def compare(
            q: str, typed: str, file: str | None, key: str, pa: str, ca: str, pb: str, cb: str, n: Any, trunc: str,
            m: str | None,
        ) -> tuple[str, str, str, str]:  # fmt: skip
            try:
                text, docs = inputs.collect(q, typed, file)
                a, b = await asyncio.gather(
                    _rank(make_api, key, text, docs, pa, ca, trunc, m),
                    _rank(make_api, key, text, docs, pb, cb, trunc, m),
                )
            except messages.FriendlyError as err:
                return render.message_html(err), "", "", ""
            except Exception as exc:  # noqa: BLE001
                log.exception("compare from the UI failed")
                return render.message_html(messages.unexpected(exc)), "", "", ""
            same = (_instruction(ca) or pa) == (_instruction(cb) or pb)
            note = render.message_html(note="A 与 B 的指令相同 A and B use the same instruction.") if same else ""
            limit = _top_n(n)
            return (
                note,
                render.compare_summary(a, b),
                render.ranking_table(a, limit, table_id="rs-table-a"),
                render.ranking_table(b, limit, table_id="rs-table-b", before=a),
            )

        def show_preset(name: str, known: dict[str, str]) -> Any:
            """Show the preset's instruction as the custom box's placeholder: what will be sent."""
            return gr.update(placeholder=known.get(name, ""))

        server_outputs = [preset, preset_b, model, presets_state, server_msg]
        demo.load(load_server, inputs=[api_key], outputs=server_outputs, show_progress="hidden")
        api_key.submit(load_server, inputs=[api_key], outputs=server_outputs, show_progress="hidden")
        api_key.blur(load_server, inputs=[api_key], outputs=server_outputs, show_progress="hidden")
        preset.change(show_preset, inputs=[preset, presets_state], outputs=[custom], show_progress="hidden")
        preset_b.change(show_preset, inputs=[preset_b, presets_state], outputs=[custom_b], show_progress="hidden")
        presets_state.change(show_preset, inputs=[preset, presets_state], outputs=[custom], show_progress="hidden")
        shared = [query, candidates, upload, api_key]
        run_btn.click(
            run,
            inputs=[*shared, preset, custom, top_n, truncation, model],
            outputs=[rank_msg, rank_stats, rank_table, rank_chart],
            api_name="rerank",
        )
        query.submit(
            run,
            inputs=[*shared, preset, custom, top_n, truncation, model],
            outputs=[rank_msg, rank_stats, rank_table, rank_chart],
            api_visibility="private",
        )
        compare_btn.click(
            compare,
            inputs=[*shared, preset, custom, preset_b, custom_b, top_n, truncation, model],
            outputs=[compare_msg, compare_stats, table_a, table_b],
            api_name="compare",
        )
    return demo
