"""The official Qwen3-Reranker recipe (model-card code) on a model already in memory: the baseline.

Tokenize, left-pad the whole request into one batch, full forward with full-vocabulary
logits, log_softmax over (no, yes) at the last position.
"""

from __future__ import annotations

import torch

from rankserve import prompts


class OfficialRecipe:
    def __init__(self, hf_model, tokenizer, max_length: int = 8192) -> None:
        self.model = hf_model
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        self.max_length = max_length
        self.prefix_tokens = tokenizer.encode(prompts.SYSTEM_PREFIX, add_special_tokens=False)
        self.suffix_tokens = tokenizer.encode(prompts.SUFFIX, add_special_tokens=False)
        self.token_false_id = tokenizer.convert_tokens_to_ids("no")
        self.token_true_id = tokenizer.convert_tokens_to_ids("yes")

    def process_inputs(self, pairs: list[str]):
        inputs = self.tokenizer(
            pairs,
            padding=False,
            truncation="longest_first",
            return_attention_mask=False,
            max_length=self.max_length - len(self.prefix_tokens) - len(self.suffix_tokens),
        )
        for i, ele in enumerate(inputs["input_ids"]):
            inputs["input_ids"][i] = self.prefix_tokens + ele + self.suffix_tokens
        inputs = self.tokenizer.pad(inputs, padding=True, return_tensors="pt")
        return {k: v.to(self.model.device) for k, v in inputs.items()}

    @torch.no_grad()
    def scores(self, query: str, documents: list[str], instruction: str | None = None) -> list[float]:
        pairs = [prompts.format_body(instruction, query, d) for d in documents]
        batch_scores = self.model(**self.process_inputs(pairs)).logits[:, -1, :]
        stacked = torch.stack([batch_scores[:, self.token_false_id], batch_scores[:, self.token_true_id]], dim=1)
        return torch.nn.functional.log_softmax(stacked, dim=1)[:, 1].exp().tolist()

    def prompt_tokens(self, query: str, documents: list[str]) -> int:
        ids = self.process_inputs([prompts.format_body(None, query, d) for d in documents])["attention_mask"]
        return int(ids.sum())
