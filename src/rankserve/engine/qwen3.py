"""A packed, padding-free forward pass over a Hugging Face Qwen3 model's weights.

We load checkpoints with ``transformers`` (so every format and hub path users rely on
works) and then run our own forward over the same parameter tensors, because scoring
needs things the generic forward does not offer: packed sequences of different lengths,
a per-request prefix computed once whose keys/values every document of the request attends
to (in the same pass, see :class:`~rankserve.engine.packing.PackedBatch`), and only the last
position's hidden state projected onto the yes/no direction (never full-vocabulary logits).

Norms, projections and the MLP are the HF modules themselves; only rotary embedding and
attention are ours (see :mod:`rankserve.engine.attention`).
"""

from __future__ import annotations

import torch
from torch import nn

from rankserve.engine.attention import attention
from rankserve.engine.packing import PackedBatch


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Qwen3Scorer(nn.Module):
    """``forward(batch) -> [N] float32`` logits ``(yes - no)`` at each pair's last token."""

    def __init__(self, base: nn.Module, head: torch.Tensor) -> None:
        super().__init__()
        cfg = base.config
        self.embed = base.embed_tokens
        self.layers = base.layers
        self.norm = base.norm
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.scale = self.head_dim**-0.5
        rotary = base.rotary_emb
        self.register_buffer("inv_freq", rotary.inv_freq.detach().float().clone(), persistent=False)
        self.rope_scale = float(getattr(rotary, "attention_scaling", 1.0))
        self.register_buffer("head", head.detach().float().clone(), persistent=False)

    def _rope(self, pos: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = pos[:, None].float() * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * self.rope_scale).to(dtype)[:, None], (emb.sin() * self.rope_scale).to(dtype)[:, None]

    @torch.inference_mode()
    def forward(self, batch: PackedBatch) -> torch.Tensor:
        x = self.embed(batch.ids)
        cos, sin = self._rope(batch.pos, x.dtype)
        layout, last, key_index = batch.layout, batch.last, batch.key_index
        n_layers = len(self.layers)
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            t = h.shape[0]
            q = attn.q_norm(attn.q_proj(h).view(t, -1, self.head_dim))
            k = attn.k_norm(attn.k_proj(h).view(t, -1, self.head_dim))
            v = attn.v_proj(h).view(t, -1, self.head_dim)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            if key_index is not None:
                k, v = k[key_index], v[key_index]
            if i == n_layers - 1:
                # Only each pair's last position feeds the score: finish the final layer for those alone.
                q, x = q[last], x[last]
                k, v = k[batch.pair_keys_start :], v[batch.pair_keys_start :]
                layout = batch.last_layer_layout()
            o = attention(q, k, v, layout, self.scale)
            x = x + attn.o_proj(o.reshape(o.shape[0], -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.norm(x).float() @ self.head
