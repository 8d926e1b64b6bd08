"""A packed, padding-free forward pass over a Hugging Face Qwen3 model's weights.

We load checkpoints with ``transformers`` (so every format and hub path users rely on
works) and then run our own forward over the same parameter tensors, because scoring
needs things the generic forward does not offer: packed sequences of different lengths,
a per-request prefix computed once whose keys/values every document of the request attends
to (in the same pass, see :class:`~rankserve.engine.packing.PackedBatch`), and only the last
position's hidden state projected onto the yes/no direction (never full-vocabulary logits).

The q/k/v projections and the MLP's gate/up projections are fused into one matrix each
(the HF modules' weights become views into it, so no memory is added), and the dense part
of each layer is two plain functions that ``torch.compile`` can fuse when asked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rankserve.engine.attention import attention
from rankserve.engine.packing import PackedBatch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen3's RMSNorm with PyTorch's fused kernel (fp32 statistics, one pass over memory).

    transformers runs the same maths as five separate kernels; in fp32 the results agree to
    rounding, in bf16 the only difference is that the weight is applied before the final cast.
    """
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def pre_attention(x, ln_w, qkv_w, qn_w, kn_w, cos, sin, eps: float, n_q: int, n_kv: int, head_dim: int):
    """Input norm, fused q/k/v projection, q/k norms and rotary embedding."""
    t = x.shape[0]
    qkv = F.linear(rms_norm(x, ln_w, eps), qkv_w)
    q, k, v = qkv.split([n_q * head_dim, n_kv * head_dim, n_kv * head_dim], dim=-1)
    q = rms_norm(q.reshape(t, n_q, head_dim), qn_w, eps)
    k = rms_norm(k.reshape(t, n_kv, head_dim), kn_w, eps)
    q = q * cos + _rotate_half(q) * sin
    k = k * cos + _rotate_half(k) * sin
    return q, k, v.reshape(t, n_kv, head_dim)


def post_attention(x, o, o_w, ln_w, gate_up_w, down_w, eps: float):
    """Output projection and residual, then the SwiGLU MLP and residual."""
    x = x + F.linear(o.reshape(o.shape[0], -1), o_w)
    gate, up = F.linear(rms_norm(x, ln_w, eps), gate_up_w).chunk(2, dim=-1)
    return x + F.linear(F.silu(gate) * up, down_w)


def decoder_layer(x, w, cos, sin, key_index, layout, scale: float, eps: float, n_q: int, n_kv: int, head_dim: int):
    """One whole decoder layer over packed tokens: what ``torch.compile`` fuses end to end."""
    ln1, qkv, qn, kn, o_w, ln2, gate_up, down = w
    q, k, v = pre_attention(x, ln1, qkv, qn, kn, cos, sin, eps, n_q, n_kv, head_dim)
    if key_index is not None:
        k, v = k[key_index], v[key_index]
    o = attention(q, k, v, layout, scale)
    return post_attention(x, o, o_w, ln2, gate_up, down, eps)


def _token_dims_dynamic(*tensors: torch.Tensor | None) -> None:
    """Tell ``torch.compile`` that these first dimensions (token and pair counts) change from call to call."""
    for t in tensors:
        if t is not None:
            torch._dynamo.maybe_mark_dynamic(t, 0)


def _fuse(linears: list[nn.Linear]) -> torch.Tensor:
    """Concatenate the weights of several bias-free linears; make each a view into the result."""
    fused = torch.cat([lin.weight.data for lin in linears], dim=0)
    start = 0
    for lin in linears:
        n = lin.weight.shape[0]
        lin.weight = nn.Parameter(fused[start : start + n], requires_grad=False)
        start += n
    return fused


class Qwen3Scorer(nn.Module):
    """``forward(batch) -> [N] float32`` logits ``(yes - no)`` at each pair's last token."""

    def __init__(self, base: nn.Module, head: torch.Tensor, compile: bool = False) -> None:
        super().__init__()
        cfg = base.config
        self.embed = base.embed_tokens
        self.norm = base.norm
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.n_q = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.eps = float(cfg.rms_norm_eps)
        self.scale = self.head_dim**-0.5
        rotary = base.rotary_emb
        self.register_buffer("inv_freq", rotary.inv_freq.detach().float().clone(), persistent=False)
        self.rope_scale = float(getattr(rotary, "attention_scaling", 1.0))
        self.register_buffer("head", head.detach().float().clone(), persistent=False)
        self.weights = []
        for layer in base.layers:
            a, m = layer.self_attn, layer.mlp
            if a.q_proj.bias is not None:
                raise ValueError("Qwen3 attention with biases is not supported")
            self.weights.append(
                (
                    layer.input_layernorm.weight,
                    _fuse([a.q_proj, a.k_proj, a.v_proj]),
                    a.q_norm.weight,
                    a.k_norm.weight,
                    a.o_proj.weight,
                    layer.post_attention_layernorm.weight,
                    _fuse([m.gate_proj, m.up_proj]),
                    m.down_proj.weight,
                )
            )
        self.layers = base.layers  # keeps the modules (and so the weights) registered
        self.use_eager()
        if compile:
            # Only the token counts vary between calls (forward marks them dynamic); the model's widths stay
            # static, so the generated kernels know their row sizes and vectorise. ``dynamic=True`` would make
            # every size symbolic: measured 1.5x slower element-wise kernels on an H200.
            self.layer = torch.compile(decoder_layer, dynamic=None)
            self.pre = torch.compile(pre_attention, dynamic=None)
            self.post = torch.compile(post_attention, dynamic=None)
            self.compiled = True

    def use_eager(self) -> None:
        """Run the plain (uncompiled) functions, e.g. after ``torch.compile`` failed on this machine."""
        self.layer, self.pre, self.post = decoder_layer, pre_attention, post_attention
        self.compiled = False

    def _rope(self, pos: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = pos[:, None].float() * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = (emb.cos() * self.rope_scale).to(dtype)[:, None]
        sin = (emb.sin() * self.rope_scale).to(dtype)[:, None]
        return cos, sin

    @torch.inference_mode()
    def forward(self, batch: PackedBatch) -> torch.Tensor:
        x = self.embed(batch.ids)
        cos, sin = self._rope(batch.pos, x.dtype)
        layout, last, key_index = batch.layout, batch.last, batch.key_index
        if self.compiled:
            _token_dims_dynamic(x, cos, sin, key_index)
        *body, final = self.weights
        for w in body:
            x = self.layer(x, w, cos, sin, key_index, layout, self.scale, self.eps, self.n_q, self.n_kv, self.head_dim)
        # Final layer: only each pair's last position feeds the score, so finish it for those alone.
        ln1, qkv, qn, kn, o_w, ln2, gate_up, down = final
        q, k, v = self.pre(x, ln1, qkv, qn, kn, cos, sin, self.eps, self.n_q, self.n_kv, self.head_dim)
        if key_index is not None:
            k, v = k[key_index], v[key_index]
        q, x = q[last], x[last]
        k, v = k[batch.pair_keys_start :], v[batch.pair_keys_start :]
        o = attention(q, k, v, batch.last_layer_layout(), self.scale)
        if self.compiled:
            _token_dims_dynamic(x, o)
        x = self.post(x, o, o_w, ln2, gate_up, down, self.eps)
        return rms_norm(x, self.norm.weight, self.eps).float() @ self.head
