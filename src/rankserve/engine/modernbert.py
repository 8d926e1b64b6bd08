"""A packed, padding-free forward pass over a transformers ``ModernBertForSequenceClassification``.

``Alibaba-NLP/gte-reranker-modernbert-base`` is ModernBERT-base with a sequence-classification head.
This runs ``modeling_modernbert.py``'s maths over the model's weight tensors on pairs packed one after
the other (see :mod:`rankserve.engine.encoders`):

- embeddings: token embedding, then LayerNorm (no bias where ``norm_bias`` is off);
- each layer, pre-norm (the first layer has no attention norm): fused ``Wqkv``, rotary embedding
  (computed in fp32 with cos/sin rounded to the model's dtype, as transformers does) whose theta
  depends on the layer type, bidirectional attention: global layers read the whole pair, sliding
  ones keys at most ``local_attention // 2`` positions away; ``Wo``, residual; then the GeGLU MLP
  (``act(input) * gate`` from one ``Wi``), residual;
- final norm, then the config's ``classifier_pooling`` (first token, or the mean of the pair's
  tokens), the head (dense, activation, norm) and the classifier.

With first-token pooling and a global last layer only each pair's first token reaches the head,
so that layer runs its attention output and MLP for those tokens alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rankserve.engine.attention import attention
from rankserve.engine.encoders import EncoderBatch, pack_pairs
from rankserve.engine.rope import rotate_half

GLOBAL, LOCAL = "full_attention", "sliding_attention"


def _check(config, rotary: nn.Module) -> None:
    """Refuse what this runner does not compute as transformers does (the caller keeps the generic forward)."""
    types = set(config.layer_types)
    if not types <= {GLOBAL, LOCAL}:
        raise ValueError(f"layer types {sorted(types - {GLOBAL, LOCAL})} are not supported")
    rope_types = set(getattr(rotary, "rope_type", {}).values())
    if rope_types - {"default"}:
        raise ValueError(f"rotary embedding {sorted(rope_types)} is not supported (only the default)")
    if config.classifier_pooling not in ("cls", "mean"):
        raise ValueError(f"classifier_pooling {config.classifier_pooling!r} is not supported")
    if config.hidden_size % config.num_attention_heads:
        raise ValueError("hidden_size is not a multiple of num_attention_heads")


def _norm(x: torch.Tensor, ln: nn.Module) -> torch.Tensor:
    """A LayerNorm (possibly without bias), or the first layer's identity."""
    if isinstance(ln, nn.LayerNorm):
        return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)
    return ln(x)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """transformers' ``apply_rotary_pos_emb`` for ModernBERT: in fp32, back to the input's dtype."""
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


class ModernBertScorer(nn.Module):
    """``forward(batch) -> [N, num_labels]`` classifier logits of packed pairs (laid out by :meth:`pack`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        cfg = model.config
        base = model.model
        _check(cfg, base.rotary_emb)
        self.embed, self.emb_norm = base.embeddings.tok_embeddings, base.embeddings.norm
        self.n_heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.scale = self.head_dim**-0.5
        self.window = int(cfg.sliding_window)  # local_attention // 2 either side (transformers' mask: distance <= it)
        self.layer_types = [layer.attention_type for layer in base.layers]
        rotary = base.rotary_emb
        self.inv_freq = {t: getattr(rotary, f"{t}_inv_freq").detach().float() for t in set(self.layer_types)}
        self.rope_scale = {t: float(getattr(rotary, f"{t}_attention_scaling")) for t in set(self.layer_types)}
        self.layers = base.layers  # keeps the modules (and so the weights) registered
        self.final_norm = base.final_norm
        self.pooling = cfg.classifier_pooling
        self.head, self.classifier = model.head, model.classifier

    def pack(self, pairs, device: torch.device) -> EncoderBatch:
        return pack_pairs(pairs, device)

    def _rope(self, pos: torch.Tensor, kind: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = pos[:, None].float() * self.inv_freq[kind].to(pos.device)[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        scale = self.rope_scale[kind]
        return (emb.cos() * scale).to(dtype)[:, None], (emb.sin() * scale).to(dtype)[:, None]

    def _attention(self, x, layer, rope, layout, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's attention output (before ``Wo``); ``rows``: only these tokens' queries."""
        t = x.shape[0]
        q, k, v = layer.attn.Wqkv(_norm(x, layer.attn_norm)).view(t, 3, self.n_heads, self.head_dim).unbind(1)
        cos, sin = rope
        k = _rotate(k, cos, sin)
        if rows is None:
            q = _rotate(q, cos, sin)
        else:
            q = _rotate(q[rows], cos[rows], sin[rows])
        local = layer.attention_type == LOCAL
        return attention(q, k, v, layout, self.scale, causal=False, window=self.window if local else None)

    @staticmethod
    def _mlp(x: torch.Tensor, layer) -> torch.Tensor:
        mlp = layer.mlp
        inp, gate = mlp.Wi(_norm(x, layer.mlp_norm)).chunk(2, dim=-1)
        return x + mlp.Wo(mlp.act(inp) * gate)

    @torch.inference_mode()
    def forward(self, batch: EncoderBatch) -> torch.Tensor:
        x = _norm(self.embed(batch.ids), self.emb_norm)
        ropes = {kind: self._rope(batch.pos, kind, x.dtype) for kind in self.inv_freq}
        layers = list(self.layers)
        # First-token pooling after a global last layer: finish that layer for each pair's first token alone
        # (a sliding one would need each query's own window, which the first-token layout does not describe).
        cls_only = self.pooling == "cls" and layers[-1].attention_type == GLOBAL
        body = layers[:-1] if cls_only else layers
        for layer in body:
            a = self._attention(x, layer, ropes[layer.attention_type], batch.layout)
            x = self._mlp(x + layer.attn.Wo(a.reshape(x.shape[0], -1)), layer)
        if cls_only:
            last = layers[-1]
            a = self._attention(x, last, ropes[GLOBAL], batch.first_layout, rows=batch.first)
            first = x[batch.first]
            pooled = _norm(self._mlp(first + last.attn.Wo(a.reshape(first.shape[0], -1)), last), self.final_norm)
        else:
            x = _norm(x, self.final_norm)
            if self.pooling == "cls":
                pooled = x[batch.first]
            else:  # the mean of each pair's tokens, summed in fp32
                sums = x.new_zeros(batch.lengths.shape[0], x.shape[1], dtype=torch.float32)
                sums.index_add_(0, batch.seq, x.float())
                pooled = (sums / batch.lengths[:, None]).to(x.dtype)
        head = self.head
        return self.classifier(_norm(head.act(head.dense(pooled)), head.norm))
