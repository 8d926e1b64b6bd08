"""A plain transformers forward for LLM rerankers the packed engine does not run (Gemma).

The base model (``model.model``: embeddings, layers and final norm) runs over right-padded pairs;
only each pair's last real token's hidden state meets the head rows, so no full-vocabulary logits
are made. Right padding keeps every real token at the positions it has unpadded (the cards pad on
the left, which shifts positions by a constant: rotary attention is blind to that, up to rounding).
The score arithmetic follows the cards': both logits in the model's dtype, then their difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rankserve.engine.types import Pair


class CausalLMScorer(nn.Module):
    """``forward(pairs) -> [N] float32`` raw scores: ``h·rows[0]`` or ``h·rows[0] - h·rows[1]``."""

    def __init__(self, hf_model: nn.Module, rows: torch.Tensor, pad_id: int) -> None:
        super().__init__()
        self.base = hf_model.model
        self.register_buffer("rows", rows.detach().clone(), persistent=False)  # [1 or 2, hidden], model dtype
        self.pad_id = pad_id
        self.hf_model = hf_model  # keeps the weights alive and registered

    @torch.inference_mode()
    def forward(self, pairs: Sequence[Pair]) -> torch.Tensor:
        device = self.rows.device
        lengths = [p.num_tokens for p in pairs]
        width = max(lengths)
        ids = torch.full((len(pairs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(pairs), width), dtype=torch.long)
        for row, pair in enumerate(pairs):
            ids[row, : lengths[row]] = torch.tensor(list(pair.prefix) + pair.tokens)
            mask[row, : lengths[row]] = 1
        hidden = self.base(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        last = hidden[torch.arange(len(pairs), device=device), torch.tensor(lengths, device=device) - 1]
        logits = last @ self.rows.t()
        raw = logits[:, 0] - logits[:, 1] if self.rows.shape[0] == 2 else logits[:, 0]
        return raw.float()
