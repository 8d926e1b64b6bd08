"""References for encoder cross-encoders: the cards' code, and the transformers forward on given token ids.

Nothing from rankserve is imported: these stay what the model cards do whatever the code under test does.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def card_logits(path, query: str, documents: list[str], max_length: int) -> list[float]:
    """The cards' code, fp32: ``tokenizer(pairs, padding=True, truncation=True, max_length=...)``, then the logits."""
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32).eval()
    pairs = [[query, d] for d in documents]
    with torch.no_grad():
        inputs = tok(pairs, padding=True, truncation=True, return_tensors="pt", max_length=max_length)
        return model(**inputs, return_dict=True).logits.view(-1).float().tolist()


def hf_logits(path, pairs) -> list[float]:
    """The transformers forward (fp32) on exactly these pairs' ids (and token types, where the pairs have
    them), right-padded with an attention mask."""
    model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32).eval()
    width = max(len(p.tokens) for p in pairs)
    ids = torch.full((len(pairs), width), model.config.pad_token_id)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    types = torch.zeros((len(pairs), width), dtype=torch.long)
    for row, pair in enumerate(pairs):
        ids[row, : len(pair.tokens)] = torch.tensor(pair.tokens)
        mask[row, : len(pair.tokens)] = 1
        if pair.token_type_ids is not None:
            types[row, : len(pair.tokens)] = torch.tensor(pair.token_type_ids)
    inputs = {"input_ids": ids, "attention_mask": mask}
    if pairs[0].token_type_ids is not None:
        inputs["token_type_ids"] = types
    with torch.no_grad():
        return model(**inputs).logits.view(-1).float().tolist()
