"""A packed, padding-free forward pass over a transformers ``XLMRobertaForSequenceClassification``.

``BAAI/bge-reranker-v2-m3`` is XLM-R large (24 post-norm layers, 8192 positions) with a RoBERTa
classification head. This runs the model's own maths over its weight tensors, in the order
``modeling_xlm_roberta.py`` does it, on pairs packed one after the other (see
:mod:`rankserve.engine.encoders`):

- embeddings: ``word + token_type``, then ``+ position`` (positions start after ``padding_idx`` and
  count only tokens that are not the padding id), then LayerNorm;
- each layer: bidirectional attention with q/k/v biases (one fused projection, whose slices the
  HF modules keep as views), output dense, residual, LayerNorm; then intermediate dense, the
  config's activation (GELU, erf form), output dense, residual, LayerNorm;
- head: ``dense`` on the first token (``<s>``), tanh, ``out_proj``.

Only the first token of each pair reaches the head, so the last layer runs its queries, its
output projection and its MLP for those tokens alone (keys and values still cover every token).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rankserve.engine.attention import attention
from rankserve.engine.encoders import EncoderBatch, pack_pairs
from rankserve.engine.qwen3 import _fuse


def _check(config) -> None:
    """Refuse what this runner does not compute as transformers does (the caller keeps the generic forward)."""
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        raise ValueError("decoder (causal) XLM-R is not an encoder cross-encoder")
    kind = getattr(config, "position_embedding_type", "absolute") or "absolute"
    if kind != "absolute":
        raise ValueError(f"position_embedding_type {kind!r} is not supported")
    if config.hidden_size % config.num_attention_heads:
        raise ValueError("hidden_size is not a multiple of num_attention_heads")


class XLMRobertaScorer(nn.Module):
    """``forward(batch) -> [N, num_labels]`` classifier logits of packed pairs (laid out by :meth:`pack`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        cfg = model.config
        _check(cfg)
        emb = model.roberta.embeddings
        self.word, self.position = emb.word_embeddings, emb.position_embeddings
        self.token_type = emb.token_type_embeddings
        self.pad_id = int(emb.padding_idx)
        self.emb_norm = emb.LayerNorm
        self.n_heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.scale = self.head_dim**-0.5
        self.weights = []
        for layer in model.roberta.encoder.layer:
            a, out = layer.attention.self, layer.attention.output
            qkv = [a.query, a.key, a.value]
            self.weights.append(
                (
                    _fuse(qkv),
                    _fuse(qkv, "bias"),
                    out.dense,
                    out.LayerNorm,
                    layer.intermediate.dense,
                    layer.intermediate.intermediate_act_fn,
                    layer.output.dense,
                    layer.output.LayerNorm,
                )
            )
        self.layers = model.roberta.encoder.layer  # keeps the modules (and so the weights) registered
        self.classifier = model.classifier
        self.max_positions = int(cfg.max_position_embeddings)

    def pack(self, pairs, device: torch.device) -> EncoderBatch:
        return pack_pairs(pairs, device, pad_id=self.pad_id)

    @staticmethod
    def _norm(x: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
        return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)

    def _mlp(self, x: torch.Tensor, w: tuple) -> torch.Tensor:
        """Intermediate dense, activation, output dense, residual and LayerNorm."""
        *_, inter, act, out, out_norm = w
        return self._norm(out(act(inter(x))) + x, out_norm)

    @torch.inference_mode()
    def forward(self, batch: EncoderBatch) -> torch.Tensor:
        x = self.word(batch.ids) + self.token_type(batch.types)
        x = self._norm(x + self.position(batch.pos), self.emb_norm)
        t, d = x.shape[0], self.head_dim
        *body, final = self.weights
        for w in body:
            qkv_w, qkv_b, o, o_norm = w[:4]
            q, k, v = F.linear(x, qkv_w, qkv_b).view(t, 3, self.n_heads, d).unbind(1)
            a = attention(q, k, v, batch.layout, self.scale, causal=False)
            x = self._mlp(self._norm(o(a.reshape(t, -1)) + x, o_norm), w)
        # Final layer: only each pair's first token feeds the head, so finish it for those alone.
        qkv_w, qkv_b, o, o_norm = final[:4]
        h = qkv_w.shape[0] // 3
        k, v = F.linear(x, qkv_w[h:], qkv_b[h:]).view(t, 2, self.n_heads, d).unbind(1)
        first = x[batch.first]
        q = F.linear(first, qkv_w[:h], qkv_b[:h]).view(-1, self.n_heads, d)
        a = attention(q, k, v, batch.first_layout, self.scale, causal=False)
        first = self._mlp(self._norm(o(a.reshape(a.shape[0], -1)) + first, o_norm), final)
        head = self.classifier
        return head.out_proj(torch.tanh(head.dense(first)))
