"""The official Qwen3-Reranker recipe, as on the model card, used as the reference in tests.

Full forward with full-vocabulary logits, left padding, log_softmax over (no, yes) at the
last position. Nothing from rankserve is used here: the prompt strings are written out again
and checked against ``rankserve.prompts``. ``rankserve.bench.recipe`` holds the same recipe for
benchmarks; this copy is deliberately separate so that the reference the engine is tested against
cannot change when the code under test does.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


def format_instruction(instruction, query, doc):
    if instruction is None:
        instruction = DEFAULT_INSTRUCTION
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"


class OfficialRecipe:
    def __init__(self, path, max_length: int = 8192, seq_cls: bool = False):
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), padding_side="left")
        cls = AutoModelForSequenceClassification if seq_cls else AutoModelForCausalLM
        self.model = cls.from_pretrained(str(path), dtype=torch.float32).eval()
        self.seq_cls = seq_cls
        self.max_length = max_length
        self.prefix_tokens = self.tokenizer.encode(PREFIX, add_special_tokens=False)
        self.suffix_tokens = self.tokenizer.encode(SUFFIX, add_special_tokens=False)
        self.token_false_id = self.tokenizer.convert_tokens_to_ids("no")
        self.token_true_id = self.tokenizer.convert_tokens_to_ids("yes")

    def process_inputs(self, pairs):
        inputs = self.tokenizer(
            pairs,
            padding=False,
            truncation="longest_first",
            return_attention_mask=False,
            max_length=self.max_length - len(self.prefix_tokens) - len(self.suffix_tokens),
        )
        for i, ele in enumerate(inputs["input_ids"]):
            inputs["input_ids"][i] = self.prefix_tokens + ele + self.suffix_tokens
        return self.tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=self.max_length)

    @torch.no_grad()
    def scores(self, query, docs, instruction=None) -> list[float]:
        pairs = [format_instruction(instruction, query, d) for d in docs]
        inputs = self.process_inputs(pairs)
        if self.seq_cls:
            return torch.sigmoid(self.model(**inputs).logits[:, 0]).tolist()
        batch_scores = self.model(**inputs).logits[:, -1, :]
        true_vector = batch_scores[:, self.token_true_id]
        false_vector = batch_scores[:, self.token_false_id]
        batch_scores = torch.stack([false_vector, true_vector], dim=1)
        batch_scores = torch.nn.functional.log_softmax(batch_scores, dim=1)
        return batch_scores[:, 1].exp().tolist()
