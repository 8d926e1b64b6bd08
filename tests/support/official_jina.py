"""An independent copy of jina-reranker-v3's own scoring, and a tiny checkpoint in its layout (no tests here).

Written from the remote code ``modeling.py`` of https://huggingface.co/jinaai/jina-reranker-v3
(``format_docs_prompts_func``, ``sanitize_input``, ``JinaForRanking.forward``, ``_truncate_texts``,
``rerank``), in its own style: the prompt assembled as one string, the marker ids hard-coded
(151670 documents, 151671 query), the forward through ``Qwen3ForCausalLM`` with an identity
``lm_head`` and ``output_hidden_states``, the window loop and the weighted query merge in numpy.
RankServe's implementation (``rankserve.engine.listwise*``) shares none of this code (only the tiny test
model's shape comes from ``rankserve.synthetic``, as for every other test model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer
from transformers.models.qwen3 import modeling_qwen3

from rankserve.synthetic import tiny_qwen3_config

SPECIAL = {"query_embed_token": "<|rerank_token|>", "doc_embed_token": "<|embed_token|>"}
DOC_ID, QUERY_ID = 151670, 151671


def sanitize(text: str) -> str:
    for token in SPECIAL.values():
        text = text.replace(token, "")
    return text


def format_prompt(query: str, docs: list[str], instruction: str | None = None) -> str:
    query = sanitize(query)
    docs = [sanitize(d) for d in docs]
    prefix = (
        "<|im_start|>system\n"
        "You are a search relevance expert who can determine a ranking of the passages based on how relevant "
        "they are to the query. "
        "If the query is a question, how relevant a passage is depends on how well it answers the question. "
        "If not, try to analyze the intent of the query and assess how well each passage satisfies the intent. "
        "If an instruction is provided, you should follow the instruction when determining the ranking."
        "<|im_end|>\n<|im_start|>user\n"
    )
    suffix = "<|im_end|>\n<|im_start|>assistant\n" + "<think>\n\n</think>\n\n"
    body = (
        f"I will provide you with {len(docs)} passages, each indicated by a numerical identifier. "
        f"Rank the passages based on their relevance to query: {query}\n"
    )
    if instruction:
        body += f"<instruct>\n{instruction}\n</instruct>\n"
    body += "\n".join(f'<passage id="{i}">\n{d}{SPECIAL["doc_embed_token"]}\n</passage>' for i, d in enumerate(docs))
    body += "\n" + f"<query>\n{query}{SPECIAL['query_embed_token']}\n</query>"
    return prefix + body + suffix


class JinaForRanking(modeling_qwen3.Qwen3ForCausalLM):
    """The card's ``JinaForRanking``: a causal LM whose head is an identity, plus the projector."""

    def __init__(self, config):
        super().__init__(config)
        self.lm_head = nn.Identity()
        self.projector = nn.Sequential(
            nn.Linear(config.hidden_size, config.hidden_size // 2, bias=False),
            nn.ReLU(),
            nn.Linear(config.hidden_size // 2, 512, bias=False),
        )
        self.post_init()

    def embeds(self, input_ids: torch.Tensor):
        out = super().forward(input_ids=input_ids, use_cache=False, output_hidden_states=True)
        hidden = out.hidden_states[-1]
        b, _, dim = hidden.shape
        docs = self.projector(hidden[input_ids == DOC_ID].view(b, -1, dim))
        query = self.projector(hidden[input_ids == QUERY_ID].unsqueeze(1))
        scores = torch.nn.functional.cosine_similarity(docs, query.expand_as(docs), dim=-1).squeeze(-1)
        return scores, query, docs


@torch.no_grad()
def official_scores(
    model: JinaForRanking,
    tokenizer,
    query: str,
    documents: list[str],
    max_doc_length: int = 2048,
    max_query_length: int = 512,
    instruction: str | None = None,
) -> list[float]:
    """``relevance_score`` of every document, in input order (the card's ``rerank`` without sorting)."""
    docs, lengths = [], []
    for doc in documents:
        ids = tokenizer(doc, truncation=True, max_length=max_doc_length)["input_ids"]
        if len(ids) >= max_doc_length:
            doc = tokenizer.decode(ids)
        lengths.append(len(ids))
        docs.append(doc)
    q_ids = tokenizer(query, truncation=True, max_length=max_query_length)["input_ids"]
    if len(q_ids) >= max_query_length:
        query = tokenizer.decode(q_ids)
    capacity = tokenizer.model_max_length - 2 * len(q_ids)

    doc_embeddings, query_embeddings, weights = [], [], []

    def run(block):
        batch = tokenizer(text=[format_prompt(query, block, instruction)], return_tensors="pt")
        scores, q, d = model.embeds(batch["input_ids"])
        doc_embeddings.extend(d[0].float().numpy())
        query_embeddings.append(q[0].float().numpy())
        weights.append(((1.0 + scores.view(-1).float().numpy()) / 2.0).max())

    block, room = [], capacity
    for length, doc in zip(lengths, docs):
        block.append(doc)
        room -= length
        if len(block) >= 125 or room <= max_doc_length:
            run(block)
            block, room = [], capacity
    if block:
        run(block)
    merged = np.average(np.array(query_embeddings), axis=0, weights=weights)
    d = np.array(doc_embeddings)
    scores = np.dot(merged, d.T) / (np.linalg.norm(merged) * np.linalg.norm(d, axis=1))
    return [float(s) for s in scores.reshape(-1)]


def build_tiny_jina(path: Path, tokenizer_dir: Path, model_max_length: int | None = None, seed: int = 0):
    """A random-weight checkpoint saved as the card's class saves it, with the marker tokens at their ids.

    The real Qwen3 tokenizer gets three added tokens so the markers land on 151670 and 151671.
    ``model_max_length``: a smaller context, so a short list already needs several windows.
    """
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    # <|jina_pad|> takes 151669 so that the markers land on the ids the card hard-codes
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|jina_pad|>", "<|embed_token|>", "<|rerank_token|>"]})
    if tokenizer.convert_tokens_to_ids(SPECIAL["doc_embed_token"]) != DOC_ID:
        raise RuntimeError("marker tokens did not land on the card's ids")
    if model_max_length is not None:
        tokenizer.model_max_length = model_max_length
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(seed)
    # the tiny Qwen3 shape every test model uses; the real vocabulary, and an untied head as the card's checkpoint
    config = tiny_qwen3_config(151936, tie_word_embeddings=False)
    model = JinaForRanking(config).eval()
    model.save_pretrained(str(path))  # config.architectures: ["JinaForRanking"], the class's name
    return model, tokenizer
