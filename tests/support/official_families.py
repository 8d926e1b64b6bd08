"""The model cards' own scoring code for the reranker families, used as references in tests.

Written out again from the cards and official repositories (nothing from rankserve is imported), so the
reference cannot change when the code under test does. Each returns (raw scores, the card's 0-1 scores).

- zerank: modeling_zeranker.py (zeroentropy/zerank-1 remote code; zerank-2 card: raw Yes logit, (x/5).sigmoid()).
- ctxl-rerank-v2: ContextualAI/ctxl-rerank-v2-instruct-multilingual-1b card, ``format_prompts`` + ``infer_w_hf``.
- mxbai-rerank-v2: github mixedbread-ai/mxbai-rerank @ 8e709dc, mxbai_rerank_v2.py (prepare_predefined_inputs,
  prepare_inputs, concat_input_ids) and utils.py (sigmoid_normalize).
- bge-reranker-v2-gemma: the model card's ``get_inputs`` (also FlagEmbedding examples/inference/reranker/README.md).
"""

from __future__ import annotations

import math

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer


def prepare_for_model(first, second, max_length):
    """transformers 4's ``tokenizer.prepare_for_model(first, second, truncation="only_second", max_length=...,
    add_special_tokens=False)`` (removed in transformers 5): the second sequence cut from the right."""
    return {"input_ids": first + second[: max(0, max_length - len(first))]}


def _causal(path):
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


@torch.no_grad()
def zerank(path, query, documents, v1=False):
    tokenizer = AutoTokenizer.from_pretrained(str(path), padding_side="right")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = _causal(path)
    texts = []
    for document in documents:
        q, d = (query[:2_000], document[:10_000]) if v1 else (query, document)
        system_prompt = f"""
{q}
""".strip()
        user_message = f"""
{d}
""".strip()
        messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": user_message}]
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    logits = model(**batch, use_cache=False).logits
    last = batch["attention_mask"].sum(dim=1) - 1
    yes = tokenizer.encode("Yes", add_special_tokens=False)[0]
    raw = logits[torch.arange(len(texts)), last, yes]
    return raw.tolist(), torch.sigmoid(raw / 5.0).tolist()


def ctxl_prompts(query: str, instruction: str, documents: list[str]) -> list[str]:
    if instruction:
        instruction = f" {instruction}"
    prompts = []
    for doc in documents:
        prompt = f"Check whether a given document contains information helpful to answer the query.\n<Document> {doc}\n<Query> {query}{instruction} ??"  # noqa: E501
        prompts.append(prompt)
    return prompts


@torch.no_grad()
def ctxl(path, query, documents, instruction="", seq_cls=False):
    tokenizer = AutoTokenizer.from_pretrained(str(path), use_fast=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    enc = tokenizer(ctxl_prompts(query, instruction, documents), return_tensors="pt", padding=True, truncation=True)
    if seq_cls:  # sigridjineth/ctxl-rerank-v2-1b-seq-cls: score row = lm_head[0]
        model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32).eval()
        next_logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    else:
        model = _causal(path)
        next_logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[:, -1, :]
    scores = next_logits[:, 0].to(torch.bfloat16).float().tolist()
    return scores, scores


class Mxbai:
    sep = "\n"
    instruction_prompt = "instruction: {instruction}"
    query_prompt = "query: {query}"
    doc_prompt = "document: {document}"
    task_prompt = "You are a search relevance expert who evaluates how well documents match search queries. For each query-document pair, carefully analyze the semantic relationship between them, then provide your binary relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"  # noqa: E501
    chat_template = {
        "prefix": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n",  # noqa: E501
        "suffix": "<|im_end|>\n<|im_start|>assistant\n",
    }

    def __init__(self, path, max_length=8192, estimated_max=12.0):
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), padding_side="left")
        self.tokenizer.padding_side = "left"
        self.model = _causal(path)
        self.estimated_max = estimated_max
        self.max_length = max_length
        self.model_max_length = self.model.config.max_position_embeddings
        tok = lambda x: self.tokenizer(x, return_tensors=None, add_special_tokens=False)["input_ids"]  # noqa: E731
        self.yes_loc = tok("1")[0]
        self.no_loc = tok("0")[0]
        self.task_prompt_inputs = tok(self.task_prompt)
        self.sep_inputs = tok(self.sep)
        self.chat_template_prefix_inputs = tok(self.chat_template["prefix"])
        self.chat_template_suffix_inputs = tok(self.chat_template["suffix"])
        self.predefined_length = (
            len(self.chat_template_prefix_inputs)
            + len(self.task_prompt_inputs)
            + len(self.chat_template_suffix_inputs)
            + len(self.sep_inputs)
        )
        if self.max_length + self.predefined_length > self.model_max_length:
            self.max_length = self.model_max_length - self.predefined_length

    def concat_input_ids(self, input_ids):
        return (
            self.chat_template_prefix_inputs
            + input_ids
            + self.sep_inputs
            + self.task_prompt_inputs
            + self.chat_template_suffix_inputs
        )

    def prepare_inputs(self, queries, documents, instruction=None):
        inputs = []
        query_prompts = [self.query_prompt.format(query=q) for q in queries]
        if instruction:
            query_prompts = [
                self.instruction_prompt.format(instruction=instruction) + self.sep + q for q in query_prompts
            ]
        document_prompts = [self.doc_prompt.format(document=d) for d in documents]
        for query_prompt, document_prompt in zip(query_prompts, document_prompts):
            query_inputs = self.tokenizer(
                query_prompt, return_tensors=None, add_special_tokens=False,
                max_length=self.max_length * 3 // 4, truncation=True,
            )  # fmt: skip
            available_tokens = self.model_max_length - len(query_inputs["input_ids"]) - self.predefined_length
            doc_maxlen = min(available_tokens, self.max_length)
            document_inputs = self.tokenizer(
                document_prompt, return_tensors=None, add_special_tokens=False, max_length=doc_maxlen, truncation=True
            )
            item = prepare_for_model(
                query_inputs["input_ids"], self.sep_inputs + document_inputs["input_ids"], self.max_length
            )
            item["input_ids"] = self.concat_input_ids(item["input_ids"])
            item["attention_mask"] = [1] * len(item["input_ids"])
            inputs.append(item)
        return self.tokenizer.pad(inputs, padding="longest", pad_to_multiple_of=8, return_tensors="pt")

    @torch.no_grad()
    def scores(self, query, documents, instruction=None):
        inputs = self.prepare_inputs([query] * len(documents), documents, instruction)
        logits = self.model(**inputs).logits[:, -1, :]
        raw = (logits[:, self.yes_loc] - logits[:, self.no_loc]).tolist()
        return raw, [1 / (1 + math.exp(-(x - self.estimated_max / 2))) for x in raw]


@torch.no_grad()
def bge_gemma(path, query, documents, max_length=1024):
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    tokenizer.padding_side = "left"
    model = _causal(path)
    yes_loc = tokenizer("Yes", add_special_tokens=False)["input_ids"][0]
    pairs = [[query, d] for d in documents]
    prompt = "Given a query A and a passage B, determine whether the passage contains an answer to the query by providing a prediction of either 'Yes' or 'No'."  # noqa: E501
    sep = "\n"
    prompt_inputs = tokenizer(prompt, return_tensors=None, add_special_tokens=False)["input_ids"]
    sep_inputs = tokenizer(sep, return_tensors=None, add_special_tokens=False)["input_ids"]
    inputs = []
    for query, passage in pairs:
        query_inputs = tokenizer(
            f"A: {query}", return_tensors=None, add_special_tokens=False, max_length=max_length * 3 // 4,
            truncation=True,
        )  # fmt: skip
        passage_inputs = tokenizer(
            f"B: {passage}", return_tensors=None, add_special_tokens=False, max_length=max_length, truncation=True
        )
        item = prepare_for_model(
            [tokenizer.bos_token_id] + query_inputs["input_ids"], sep_inputs + passage_inputs["input_ids"], max_length
        )
        item["input_ids"] = item["input_ids"] + sep_inputs + prompt_inputs
        item["attention_mask"] = [1] * len(item["input_ids"])
        inputs.append(item)
    batch = tokenizer.pad(
        inputs, padding=True, max_length=max_length + len(sep_inputs) + len(prompt_inputs), pad_to_multiple_of=8,
        return_tensors="pt",
    )  # fmt: skip
    raw = model(**batch, return_dict=True).logits[:, -1, yes_loc].view(-1).float()
    return raw.tolist(), torch.sigmoid(raw).tolist()
