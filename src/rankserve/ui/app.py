"""The Gradio page's layout: inputs on top, then tabs to rank, compare two instructions and
(with an index) search documents; the actions live in ``handlers.py``.

The page holds no model: every action is an HTTP call to a RankServe server through
:class:`~rankserve.ui.api.RankServeAPI`, built per click by ``make_api(key)`` with the API key
the user typed. That is what lets the same page run mounted in the server (``/ui``) or alone
(``rankserve ui --api-url``), and why the mounted page cannot get round the server's API key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from rankserve.ui import render
from rankserve.ui.examples import EXAMPLES
from rankserve.ui.handlers import FALLBACK_PRESETS, ApiFactory, Handlers

CSS = (Path(__file__).with_name("style.css")).read_text(encoding="utf-8")
CONCURRENCY = 16
TRUNCATION_CHOICES = [("head_tail（默认 default）", "head_tail"), ("head", "head"), ("chunks", "chunks")]


def theme() -> gr.themes.Base:
    """Local fonts only: the default theme links Google Fonts, which closed networks cannot reach."""
    return gr.themes.Soft(
        font=["Noto Sans CJK SC", "Noto Sans", "DejaVu Sans", "system-ui", "sans-serif"],
        font_mono=["Noto Sans Mono CJK SC", "DejaVu Sans Mono", "monospace"],
    )


UPLOAD_CLEANUP = (600, 3600)
"""Every 10 minutes, delete uploaded files older than an hour (Gradio keeps them otherwise)."""


def build_blocks(make_api: ApiFactory, *, server_label: str, index: Any = None) -> gr.Blocks:
    """The whole page. ``server_label`` tells the user which server the page talks to;
    ``index`` (a loaded ``rankserve index``) adds the "Search documents" tab."""
    with gr.Blocks(title="RankServe UI", analytics_enabled=False, delete_cache=UPLOAD_CLEANUP) as demo:
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
                        value="default",
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
            if index is not None:
                with gr.Tab("搜索文档 Search documents", id="search"):
                    gr.Markdown(
                        f"在索引 `{index.path}`（{len(index)} 段）中检索，再用上方的指令重排序；"
                        "箭头表示相对初排的名次变化。 Retrieve from the index, rerank with the instruction "
                        "above; arrows show each passage's move versus the first stage."
                    )
                    with gr.Row():
                        search_q = gr.Textbox(label="问题 Question", scale=4, elem_id="rs-search-query")
                        search_k = gr.Number(value=50, precision=0, minimum=1, label="初排 Top K", scale=1)
                        search_n = gr.Number(value=5, precision=0, minimum=1, label="显示 Top N", scale=1)
                    search_btn = gr.Button("搜索 Search", variant="primary", elem_id="rs-search")
                    search_msg = gr.HTML(elem_id="rs-search-message")
                    search_stats = gr.HTML(elem_id="rs-search-stats")
                    search_table = gr.HTML(elem_id="rs-search-results")

        act = Handlers(make_api, index)

        def show_preset(name: str, known: dict[str, str]) -> Any:
            """Show the preset's instruction as the custom box's placeholder: what will be sent."""
            return gr.update(placeholder=known.get(name, ""))

        quiet: dict[str, Any] = {"show_progress": "hidden"}
        server_outputs = [server_msg, preset, preset_b, model, presets_state]
        demo.load(act.load_server, inputs=[api_key], outputs=server_outputs, **quiet)
        api_key.submit(act.load_server, inputs=[api_key], outputs=server_outputs, **quiet)
        api_key.blur(act.load_server, inputs=[api_key], outputs=server_outputs, **quiet)
        preset.change(show_preset, inputs=[preset, presets_state], outputs=[custom], **quiet)
        preset_b.change(show_preset, inputs=[preset_b, presets_state], outputs=[custom_b], **quiet)
        presets_state.change(show_preset, inputs=[preset, presets_state], outputs=[custom], **quiet)
        rank_inputs = [query, candidates, upload, api_key, preset, custom, top_n, truncation, model]
        rank_outputs = [rank_msg, rank_stats, rank_table, rank_chart]
        run_btn.click(act.run, inputs=rank_inputs, outputs=rank_outputs, api_name="rerank")
        query.submit(act.run, inputs=rank_inputs, outputs=rank_outputs, api_visibility="private")
        compare_btn.click(
            act.compare,
            inputs=[query, candidates, upload, api_key, preset, custom, preset_b, custom_b, top_n, truncation, model],
            outputs=[compare_msg, compare_stats, table_a, table_b],
            api_name="compare",
        )
        if index is not None:
            search_btn.click(
                act.search,
                inputs=[search_q, api_key, search_k, search_n, preset, custom, truncation, model],
                outputs=[search_msg, search_stats, search_table],
                api_name="search",
            )
    # Gradio runs one call per event at a time by default; the actions only wait on HTTP and
    # the server batches concurrent requests, so let several users' clicks run together.
    demo.queue(default_concurrency_limit=CONCURRENCY)
    return demo
