"""The official scoring code of each reranker family, on a model already in memory: the baselines.

Written out again from the model cards and official repositories, batched as they batch (padding
side, batch size, length sorting), with their full-vocabulary forward passes: this is the code a
user runs without RankServe. Every recipe returns *raw* scores (the head's logit, before any
sigmoid) so that they compare with the engine's ``raw_scores``. Nothing from the engine is used
but the prompt strings' constants, which the tests check against independent copies
(``tests/support/official_families.py``). :mod:`rankserve.bench.recipe` does the same for
Qwen3-Reranker.

Sources:

- mxbai-rerank-v2: github mixedbread-ai/mxbai-rerank @ 8e709dc, ``mxbai_rerank_v2.py``
  (``prepare_predefined_inputs``, ``prepare_inputs``, ``concat_input_ids``; left padding to a multiple
  of 8) and ``rank()``'s batching (``utils.bucket_batch_iter``: one batch up to 32 documents, else
  batches of 32 sorted by length, longest first).
- bge-reranker-v2-gemma: the model card's ``get_inputs`` (max_length 1024), all pairs in one batch
  as the card does (FlagLLMReranker's default batch of 128 holds a whole W100 too).
- zerank-2: the chat template with the query as system turn and the document as user turn, both
  stripped (``modeling_zeranker.py``), right padding, the Yes logit at each row's last token; batches
  of 32 in input order, sentence-transformers ``CrossEncoder.predict``'s default (the card's entry point).
- ctxl-rerank-v2: the card's ``format_prompts`` + ``infer_w_hf``: one left-padded batch, logit of
  vocabulary id 0 at the last position rounded to bfloat16.
- bge-reranker-v2-m3 and gte-reranker-modernbert-base: the cards' transformers snippet,
  ``tokenizer(pairs, padding=True, truncation=True, max_length=512)``, one batch, the single logit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from rankserve.engine.templates import CTXL_HEAD, GEMMA_PROMPT, MXBAI_PREFIX, MXBAI_SUFFIX, MXBAI_TASK


class Recipe(Protocol):
    def scores(self, query: str, documents: Sequence[str]) -> list[float]: ...

    def prompt_tokens(self, query: str, documents: Sequence[str]) -> int: ...


def prepare_for_model(first: list[int], second: list[int], max_length: int) -> dict:
    """transformers 4's ``prepare_for_model(first, second, truncation="only_second", max_length=...,
    add_special_tokens=False)`` (gone in transformers 5): the second sequence cut from the right."""
    return {"input_ids": first + second[: max(0, max_length - len(first))]}


class CardRecipe:
    """Shared loop: the card's batches, one forward pass each, its head on each batch's logits."""

    padding_side = "left"

    def __init__(self, hf_model, tokenizer) -> None:
        self.model = hf_model
        self.tokenizer = tokenizer

    def batches(self, query: str, documents: Sequence[str]) -> list[tuple[list[int], dict]]:
        """(positions in ``documents``, tokenized batch) pairs, as the card forms them."""
        raise NotImplementedError

    def head(self, inputs: dict) -> torch.Tensor:
        raise NotImplementedError

    def _on_device(self, inputs) -> dict:
        return {k: v.to(self.model.device) for k, v in inputs.items()}

    @torch.inference_mode()
    def scores(self, query: str, documents: Sequence[str]) -> list[float]:
        self.tokenizer.padding_side = self.padding_side  # tokenizers are shared between recipes
        out = [float("nan")] * len(documents)
        for positions, inputs in self.batches(query, documents):
            for i, value in zip(positions, self.head(self._on_device(inputs)).float().tolist()):
                out[i] = value
        return out

    def prompt_tokens(self, query: str, documents: Sequence[str]) -> int:
        self.tokenizer.padding_side = self.padding_side
        return sum(int(inputs["attention_mask"].sum()) for _, inputs in self.batches(query, documents))


class Mxbai(CardRecipe):
    """``MxbaiRerankV2``: pieces tokenized apart and concatenated, the "1" minus "0" logit."""

    def __init__(self, hf_model, tokenizer, max_length: int = 8192, batch_size: int = 32) -> None:
        super().__init__(hf_model, tokenizer)
        self.batch_size = batch_size
        self.max_length = max_length
        self.model_max_length = hf_model.config.max_position_embeddings
        tok = self._ids
        self.yes_loc, self.no_loc = tok("1")[0], tok("0")[0]
        self.task_prompt_inputs = tok(MXBAI_TASK)
        self.sep_inputs = tok("\n")
        self.chat_template_prefix_inputs = tok(MXBAI_PREFIX)
        self.chat_template_suffix_inputs = tok(MXBAI_SUFFIX)
        self.predefined_length = (
            len(self.chat_template_prefix_inputs)
            + len(self.task_prompt_inputs)
            + len(self.chat_template_suffix_inputs)
            + len(self.sep_inputs)
        )
        if self.max_length + self.predefined_length > self.model_max_length:
            self.max_length = self.model_max_length - self.predefined_length

    def _ids(self, text: str, **kw) -> list[int]:
        return self.tokenizer(text, return_tensors=None, add_special_tokens=False, **kw)["input_ids"]

    def _inputs(self, query: str, documents: Sequence[str]) -> dict:
        items = []
        query_ids = self._ids(f"query: {query}", max_length=self.max_length * 3 // 4, truncation=True)
        for document in documents:
            available_tokens = self.model_max_length - len(query_ids) - self.predefined_length
            doc_maxlen = min(available_tokens, self.max_length)
            doc_ids = self._ids(f"document: {document}", max_length=doc_maxlen, truncation=True)
            item = prepare_for_model(query_ids, self.sep_inputs + doc_ids, self.max_length)
            item["input_ids"] = (
                self.chat_template_prefix_inputs
                + item["input_ids"]
                + self.sep_inputs
                + self.task_prompt_inputs
                + self.chat_template_suffix_inputs
            )
            item["attention_mask"] = [1] * len(item["input_ids"])
            items.append(item)
        return self.tokenizer.pad(items, padding="longest", pad_to_multiple_of=8, return_tensors="pt")

    def batches(self, query, documents):
        if len(documents) <= self.batch_size:
            groups = [list(range(len(documents)))]
        else:  # bucket_batch_iter: sorted by length, longest first
            order = sorted(range(len(documents)), key=lambda i: len(documents[i]), reverse=True)
            groups = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        return [(g, self._inputs(query, [documents[i] for i in g])) for g in groups]

    def head(self, inputs):
        logits = self.model(**inputs).logits[:, -1, :]
        return logits[:, self.yes_loc] - logits[:, self.no_loc]


class BgeGemma(CardRecipe):
    """bge-reranker-v2-gemma's card ``get_inputs``: ``<bos>A: q\\nB: p\\n<prompt>``, the Yes logit."""

    def __init__(self, hf_model, tokenizer, max_length: int = 1024) -> None:
        super().__init__(hf_model, tokenizer)
        self.max_length = max_length
        self.yes_loc = tokenizer("Yes", add_special_tokens=False)["input_ids"][0]
        self.prompt_inputs = tokenizer(GEMMA_PROMPT, return_tensors=None, add_special_tokens=False)["input_ids"]
        self.sep_inputs = tokenizer("\n", return_tensors=None, add_special_tokens=False)["input_ids"]

    def batches(self, query, documents):
        tok, max_length = self.tokenizer, self.max_length
        inputs = []
        for passage in documents:
            query_inputs = tok(
                f"A: {query}", return_tensors=None, add_special_tokens=False, max_length=max_length * 3 // 4,
                truncation=True,
            )  # fmt: skip
            passage_inputs = tok(
                f"B: {passage}", return_tensors=None, add_special_tokens=False, max_length=max_length, truncation=True
            )
            first = [tok.bos_token_id] + query_inputs["input_ids"]
            item = prepare_for_model(first, self.sep_inputs + passage_inputs["input_ids"], max_length)
            item["input_ids"] = item["input_ids"] + self.sep_inputs + self.prompt_inputs
            item["attention_mask"] = [1] * len(item["input_ids"])
            inputs.append(item)
        batch = tok.pad(
            inputs, padding=True, max_length=max_length + len(self.sep_inputs) + len(self.prompt_inputs),
            pad_to_multiple_of=8, return_tensors="pt",
        )  # fmt: skip
        return [(list(range(len(documents))), batch)]

    def head(self, inputs):
        return self.model(**inputs, return_dict=True).logits[:, -1, self.yes_loc].view(-1)


class Zerank(CardRecipe):
    """zerank: query as the system turn, document as the user turn, the Yes logit at the last real token."""

    padding_side = "right"

    def __init__(self, hf_model, tokenizer, batch_size: int = 32) -> None:
        super().__init__(hf_model, tokenizer)
        self.batch_size = batch_size
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.yes = tokenizer.encode("Yes", add_special_tokens=False)[0]

    def _text(self, query: str, document: str) -> str:
        system_prompt = f"""
{query}
""".strip()
        user_message = f"""
{document}
""".strip()
        messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": user_message}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def batches(self, query, documents):
        out = []
        for start in range(0, len(documents), self.batch_size):
            texts = [self._text(query, d) for d in documents[start : start + self.batch_size]]
            positions = list(range(start, start + len(texts)))
            out.append((positions, self.tokenizer(texts, padding=True, return_tensors="pt")))
        return out

    def head(self, inputs):
        logits = self.model(**inputs, use_cache=False).logits
        last = inputs["attention_mask"].sum(dim=1) - 1
        return logits[torch.arange(len(last), device=last.device), last, self.yes]


def ctxl_prompts(query: str, instruction: str, documents: Sequence[str]) -> list[str]:
    """The card's ``format_prompts``."""
    if instruction:
        instruction = f" {instruction}"
    return [f"{CTXL_HEAD} {doc}\n<Query> {query}{instruction} ??" for doc in documents]


class Ctxl(CardRecipe):
    """ctxl-rerank-v2's ``infer_w_hf``: one left-padded batch, logit of id 0 at the last position in bf16."""

    def __init__(self, hf_model, tokenizer) -> None:
        super().__init__(hf_model, tokenizer)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    def batches(self, query, documents):
        enc = self.tokenizer(ctxl_prompts(query, "", documents), return_tensors="pt", padding=True, truncation=True)
        return [(list(range(len(documents))), enc)]

    def head(self, inputs):
        next_logits = self.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        return next_logits[:, -1, :][:, 0].to(torch.bfloat16).float()


class CrossEncoderCard(CardRecipe):
    """bge-reranker-v2-m3 / gte-reranker-modernbert-base: the cards' transformers snippet, one batch."""

    padding_side = "right"

    def __init__(self, hf_model, tokenizer, max_length: int = 512) -> None:
        super().__init__(hf_model, tokenizer)
        self.max_length = max_length

    def batches(self, query, documents):
        pairs = [[query, d] for d in documents]
        enc = self.tokenizer(pairs, padding=True, truncation=True, return_tensors="pt", max_length=self.max_length)
        return [(list(range(len(documents))), enc)]

    def head(self, inputs):
        return self.model(**inputs, return_dict=True).logits.view(-1).float()


RECIPES = {"mxbai": Mxbai, "bge-gemma": BgeGemma, "zerank": Zerank, "ctxl": Ctxl, "cross-encoder": CrossEncoderCard}
"""Recipe class per family template (:attr:`rankserve.engine.families.Family.template`)."""
