"""Serve random weights of a real architecture through the real HTTP app (GPU benchmarks only).

No checkpoint is needed: the model is built on the GPU from a config.json, wrapped with
``Reranker.from_model`` and handed to ``create_app``. Everything after that (batcher,
endpoints, limits) is the production server.

    python -m rankserve.bench.serve_random --config CONFIG --tokenizer DIR --port 8100
"""

from __future__ import annotations

import logging

import torch
import typer
import uvicorn


def main(
    config: str = typer.Option(..., help="config.json of the architecture."),
    tokenizer: str = typer.Option(..., help="Tokenizer directory."),
    port: int = typer.Option(8100),
    compile: bool = typer.Option(True, "--compile/--no-compile"),
    cuda_graphs: bool = typer.Option(True, "--cuda-graphs/--no-cuda-graphs"),
    max_batch_tokens: int = typer.Option(None),
) -> None:
    from rankserve.bench.engine_bench import load_causal_lm
    from rankserve.engine import Reranker
    from rankserve.server.app import create_app
    from rankserve.server.settings import ServerSettings

    logging.basicConfig(level=logging.INFO)
    dev = torch.device("cuda")
    hf_model, tok, name = load_causal_lm(None, config, tokenizer, dev, torch.bfloat16)
    reranker = Reranker.from_model(
        hf_model, tok, name, compile=compile, max_batch_tokens=max_batch_tokens, cuda_graphs=cuda_graphs
    )
    reranker.warmup()
    settings = ServerSettings(model=name, host="127.0.0.1", port=port, request_timeout=120)
    app = create_app(settings, reranker=reranker, mount_ui=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    typer.run(main)
