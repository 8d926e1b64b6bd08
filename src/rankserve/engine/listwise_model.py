"""Running jina-reranker-v3 windows: a Qwen3 decoder, a projector MLP and the cross-window merge.

Weights follow the checkpoint's layout (``JinaForRanking`` in the remote code ``modeling.py`` of
https://huggingface.co/jinaai/jina-reranker-v3, also read by vLLM's ``models/jina.py``): the
decoder under ``model.*`` and ``projector.0.weight`` / ``projector.2.weight`` (Linear H -> H/2,
ReLU, Linear H/2 -> 512, no biases) in the same safetensors; its ``lm_head`` is an identity and
any ``lm_head.*`` tensor is ignored. A checkpoint without projector weights is refused: a
randomly initialised projector would give scores that look real and mean nothing.

Each window is one forward pass over its whole token sequence (batch of one, no padding, as the
card's ``rerank`` runs it); the final normed hidden states at the marker tokens are projected.
Scores (see :mod:`rankserve.engine.listwise`): per window, the cosine of each document with the
window's query embedding, whose best ``(1 + cos) / 2`` weighs that window's query embedding in
the request's average; each document's final score is its cosine with that average.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import Qwen3Config, Qwen3Model, Qwen3PreTrainedModel

from rankserve.engine.types import Pair
from rankserve.errors import EngineError, ModelLoadError

PROJECTOR_DIM = 512


class ListwiseQwen3(Qwen3PreTrainedModel):
    """The decoder and the projector under the checkpoint's own parameter names (no language-model head)."""

    config_class = Qwen3Config
    _keys_to_ignore_on_load_unexpected = [r"^lm_head\."]

    def __init__(self, config: Qwen3Config) -> None:
        super().__init__(config)
        self.model = Qwen3Model(config)
        self.projector = nn.Sequential(
            nn.Linear(config.hidden_size, config.hidden_size // 2, bias=False),
            nn.ReLU(),
            nn.Linear(config.hidden_size // 2, PROJECTOR_DIM, bias=False),
        )
        self.post_init()

    def get_output_embeddings(self):  # no language-model head: nothing to tie
        return None


def load(model: str, device: torch.device, dtype: torch.dtype) -> ListwiseQwen3:
    """The checkpoint's decoder and projector; refuses one whose projector (or any decoder weight) is missing."""
    try:
        hf_model, info = ListwiseQwen3.from_pretrained(
            model, dtype=dtype, attn_implementation="sdpa", output_loading_info=True
        )
    except OSError as exc:
        raise ModelLoadError(f"could not load the weights of {model!r}: {exc}") from exc
    missing = [k for k in info.get("missing_keys", ()) if "rotary" not in k]
    if missing:
        shown = ", ".join(sorted(missing)[:4])
        raise ModelLoadError(f"{model!r} lacks weights of the listwise reranker ({len(missing)} missing: {shown})")
    return hf_model.to(device).eval()


class ListwiseScorer:
    """Scores complete listwise groups (``Pair.group``); raw scores are final cosines, in pair order."""

    def __init__(self, model: ListwiseQwen3, doc_id: int, query_id: int) -> None:
        self.model = model
        self.doc_id = doc_id
        self.query_id = query_id
        self.device = next(model.parameters()).device

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        groups: dict[str, list[int]] = {}
        for position, pair in enumerate(pairs):
            if pair.group is None:
                raise EngineError("a listwise model scores listwise pairs only (Pair.group is missing)")
            groups.setdefault(pair.group.key, []).append(position)
        scores = [float("nan")] * len(pairs)
        for positions in groups.values():
            members = sorted(positions, key=lambda p: pairs[p].doc_index)
            size = pairs[members[0]].group.size
            if len(members) != size or [pairs[p].doc_index for p in members] != list(range(size)):
                raise EngineError(
                    f"a listwise request came with {len(members)} of its {size} documents; it is scored whole or not"
                )
            for position, value in zip(members, self._group([pairs[p] for p in members])):
                scores[position] = value
        return scores

    @torch.inference_mode()
    def _group(self, pairs: list[Pair]) -> list[float]:
        """Final scores of one request's documents (in document order)."""
        windows: dict[int, list[Pair]] = {}
        for pair in pairs:
            windows.setdefault(pair.window, []).append(pair)
        docs, queries, weights = [], [], []
        for number in sorted(windows):
            own = windows[number]
            ids = torch.tensor([[t for p in own for t in p.tokens]], device=self.device)
            hidden = self.model.model(input_ids=ids).last_hidden_state[0]
            doc_rows = (ids[0] == self.doc_id).nonzero().flatten()
            query_rows = (ids[0] == self.query_id).nonzero().flatten()
            if len(doc_rows) != len(own) or len(query_rows) != 1:
                raise EngineError(f"window {number}: {len(doc_rows)} document markers for {len(own)} documents")
            d = self.model.projector(hidden[doc_rows])
            q = self.model.projector(hidden[query_rows])
            cos = torch.nn.functional.cosine_similarity(d, q.expand_as(d), dim=-1).float()
            docs.append(d.float())
            queries.append(q[0].float())
            weights.append(((1.0 + cos) / 2.0).max())
        w = torch.stack(weights)
        if float(w.sum()) == 0.0:  # every window's best cosine is -1: no window outweighs another
            w = torch.ones_like(w)
        merged = (torch.stack(queries) * w[:, None]).sum(0) / w.sum()
        d = torch.cat(docs)
        final = (d @ merged) / (merged.norm() * d.norm(dim=-1))
        return final.tolist()
