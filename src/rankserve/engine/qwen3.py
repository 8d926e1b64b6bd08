"""A packed, padding-free forward pass over a Hugging Face Qwen3 (or Qwen2, or Gemma) model's weights.

We load checkpoints with ``transformers`` (so every format and hub path users rely on
works) and then run our own forward over the same parameter tensors, because scoring
needs things the generic forward does not offer: packed sequences of different lengths,
a per-request prefix computed once whose keys/values every document of the request attends
to (in the same pass, see :class:`~rankserve.engine.packing.PackedBatch`), and only the last
position's hidden state projected onto the yes/no direction (never full-vocabulary logits).

The q/k/v projections and the MLP's gate/up projections are fused into one matrix each
(the HF modules' weights become views into it, so no memory is added), and the dense part
of each layer is two plain functions that ``torch.compile`` can fuse when asked.

Qwen2 is Qwen3 with two differences, taken as options rather than a second copy of this runner:
q/k/v projections with biases (added to the fused projection) and no per-head q/k RMSNorm. Without
the norms, queries and keys are rotated in PyTorch right after the projection (:func:`pre_attention`;
fused there by ``torch.compile``) and attention gets no :class:`QueryNorm`: the Triton kernels' fused
norm-and-rotate paths (:func:`triton_rope.k_norm_rope`, the attention kernel's ``NORM_Q``) are
Qwen3's alone, while the attention kernel itself (plain queries) serves both.

Gemma (v1: ``GemmaForCausalLM``, bge-reranker-v2-gemma) is Qwen2's layer without biases, described by
:class:`Architecture`: its RMSNorm multiplies by ``1 + weight`` in fp32 before casting back
(:func:`offset_rms_norm`, the weights kept as fp32 ``1 + weight``), its MLP gate is GeLU with the tanh
approximation, and its embeddings are scaled by ``sqrt(hidden_size)`` rounded to the model's dtype. The
norm and the activation reach the layer functions as keyword arguments bound once
(``functools.partial``), so Qwen3's and Qwen2's calls are the unchanged functions with their defaults.
Gemma's head dimension (256) and single key/value head are plain parameters of every attention kernel.
Later Gemmas (sliding windows, logit soft-capping, extra norms) are refused, not run approximately.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rankserve.engine import triton_rope
from rankserve.engine.attention import attention, uses_triton
from rankserve.engine.packing import PackedBatch
from rankserve.engine.rope import QueryNorm, norm_rope, rope


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen3's RMSNorm with PyTorch's fused kernel (fp32 statistics, one pass over memory).

    transformers runs the same maths as five separate kernels; in fp32 the results agree to
    rounding, in bf16 the only difference is that the weight is applied before the final cast.
    """
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def offset_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Gemma's RMSNorm: normalised and scaled in fp32, then cast back; ``weight`` is the fp32 ``1 + w``.

    transformers' ``GemmaRMSNorm`` computes ``(x.float() * rsqrt(mean(x²) + eps)) * (1.0 + w.float())``
    and casts the product (``type_as``): the order kept here, with ``1 + w`` computed once at load.
    """
    return F.rms_norm(x.float(), (x.shape[-1],), weight, eps).to(x.dtype)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GeLU with the tanh approximation (transformers' ``gelu_pytorch_tanh``: Gemma's MLP gate)."""
    return F.gelu(x, approximate="tanh")


@dataclass(frozen=True)
class Architecture:
    """What a decoder's maths does differently from Qwen3's (beyond biases and q/k norms, read from the modules).

    ``norm_offset``: RMSNorm scales by ``1 + weight`` in fp32 (:func:`offset_rms_norm`);
    ``embed_scale``: embeddings are multiplied by ``sqrt(hidden_size)`` cast to the model's dtype.
    The MLP's activation is the one its module computes (:func:`_activation`).
    """

    norm_offset: bool = False
    embed_scale: bool = False


ARCHITECTURES = {
    "qwen3": Architecture(),
    "qwen2": Architecture(),
    "gemma": Architecture(norm_offset=True, embed_scale=True),
}
"""Model types the packed engine runs; any other (Gemma 2 and 3: soft-capping, sliding windows) is refused."""

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"silu": F.silu, "gelu_tanh": gelu_tanh}


FP8_MAX = 448.0  # the largest float8_e4m3fn value


def quantize_fp8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel FP8 (e4m3) weights: ``(w8 [out, in], scale [1, out] fp32)``."""
    scale = w.detach().abs().amax(dim=1).float().clamp(min=1e-12) / FP8_MAX
    w8 = (w.detach().float() / scale[:, None]).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return w8, scale[None, :].contiguous()


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token FP8 activations: ``(x8 [T, in], scale [T, 1] fp32)``.

    Called inside the compiled layer functions, so ``torch.compile`` fuses the row maximum and the
    cast into the kernel that produced ``x`` (the norm, the SwiGLU, the residual add): run eagerly,
    these were five extra passes over every projection's input, which made FP8 slower than bf16.
    """
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX
    return (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn), scale


def linear(
    x: torch.Tensor, w: torch.Tensor | tuple[torch.Tensor, torch.Tensor], b: torch.Tensor | None = None
) -> torch.Tensor:
    """``x @ w.T (+ b)``; for FP8 weights, each token is scaled to FP8 on the fly (per-row scales, fp32 accumulate)."""
    if isinstance(w, tuple):
        w8, w_scale = w
        x8, x_scale = quantize_rows(x)
        out = torch._scaled_mm(x8, w8.t(), scale_a=x_scale, scale_b=w_scale, out_dtype=x.dtype)
        return out if b is None else out + b
    return F.linear(x, w, b)


def pre_attention(x, ln_w, qkv_w, qkv_b, kn_w, cos, sin, eps: float, n_q: int, n_kv: int, head_dim: int, norm=rms_norm):
    """Input norm, fused q/k/v projection (with its bias, if any), and the keys' norm and rotary embedding.

    With q/k norms (Qwen3, ``kn_w`` given) the queries come back as projected: attention normalises and
    rotates them (:class:`QueryNorm`), on Hopper inside its kernel, which saves writing them out and
    reading them back. Without (Qwen2, ``kn_w is None``) queries and keys come back rotated.
    """
    t = x.shape[0]
    qkv = linear(norm(x, ln_w, eps), qkv_w, qkv_b)
    q, k, v = (part.view(t, -1, head_dim) for part in qkv.split([n_q * head_dim, n_kv * head_dim, n_kv * head_dim], -1))
    if kn_w is None:
        return rope(q, cos, sin), rope(k, cos, sin), v
    if uses_triton(q, v) and triton_rope.supports(qkv, head_dim):
        k = triton_rope.k_norm_rope(qkv, kn_w, cos, sin, eps, n_q, n_kv)  # the keys' norm and rotation in one kernel
    else:
        k = norm_rope(k, kn_w, cos, sin, eps)
    return q, k, v


def mlp_input(x, ln_w, gate_up_w, eps: float, norm=rms_norm, act=F.silu):
    """Post-attention norm, fused gate/up projection and the gated activation (SwiGLU; Gemma: GeGLU-tanh):
    the MLP up to its down projection."""
    gate, up = linear(norm(x, ln_w, eps), gate_up_w).chunk(2, dim=-1)
    return act(gate) * up


def post_attention(x, o, o_w, ln_w, gate_up_w, down_w, eps: float, norm=rms_norm, act=F.silu):
    """Output projection and residual, then the gated MLP and residual."""
    x = x + linear(o.reshape(o.shape[0], -1), o_w)
    return x + linear(mlp_input(x, ln_w, gate_up_w, eps, norm, act), down_w)


def add_linear_(x: torch.Tensor, a: torch.Tensor, w: torch.Tensor | tuple) -> None:
    """``x += a @ w.T`` in place: cuBLAS adds the product into ``x`` (beta = 1) as it writes it.

    The same arithmetic as ``x + linear(a, w)`` compiled (inductor turns that into ``addmm``), without
    the copy of ``x`` into a new buffer that ``addmm`` needs when its input must survive: two copies of
    the residual stream a layer, 1.6 ms of a 0.6B W100 forward on an H200.
    """
    if isinstance(w, tuple):
        x.add_(linear(a, w))
    else:
        x.addmm_(a, w.t())


def query_norm(qn_w, cos, sin, eps: float) -> QueryNorm | None:
    """What attention still does to the queries: Qwen3's norm and rotation; nothing for Qwen2 (rotated already)."""
    return None if qn_w is None else QueryNorm(qn_w, cos, sin, eps)


def decoder_layer(
    x, w, cos, sin, layout, scale: float, eps: float, n_q: int, n_kv: int, head_dim: int, norm=rms_norm, act=F.silu
):
    """One whole decoder layer over packed tokens: what ``torch.compile`` fuses end to end."""
    ln1, qkv, qkv_b, qn, kn, o_w, ln2, gate_up, down = w
    q, k, v = pre_attention(x, ln1, qkv, qkv_b, kn, cos, sin, eps, n_q, n_kv, head_dim, norm)
    o = attention(q, k, v, layout, scale, query_norm(qn, cos, sin, eps))
    return post_attention(x, o, o_w, ln2, gate_up, down, eps, norm, act)


def _token_dims_dynamic(*tensors: torch.Tensor) -> None:
    """Tell ``torch.compile`` that these first dimensions (token and pair counts) change from call to call."""
    for t in tensors:
        torch._dynamo.maybe_mark_dynamic(t, 0)


def _to_fp8(w: tuple) -> tuple:
    """A layer's weights with its four projection matrices quantized."""
    ln1, qkv, qkv_b, qn, kn, o_w, ln2, gate_up, down = w
    return ln1, quantize_fp8(qkv), qkv_b, qn, kn, quantize_fp8(o_w), ln2, quantize_fp8(gate_up), quantize_fp8(down)


def _fuse(linears: list[nn.Linear], attr: str = "weight") -> torch.Tensor:
    """Concatenate the weights (or biases) of several linears; make each a view into the result."""
    fused = torch.cat([getattr(lin, attr).data for lin in linears], dim=0)
    start = 0
    for lin in linears:
        n = getattr(lin, attr).shape[0]
        setattr(lin, attr, nn.Parameter(fused[start : start + n], requires_grad=False))
        start += n
    return fused


def _attention_weights(a: nn.Module) -> tuple:
    """``(qkv_w, qkv_b, q_norm_w, k_norm_w)`` of an attention module: Qwen3's (norms, no biases) or Qwen2's
    (q/k/v biases, no norms); anything else is refused rather than run with a part missing."""
    qkv = [a.q_proj, a.k_proj, a.v_proj]
    biased = [lin.bias is not None for lin in qkv]
    q_norm, k_norm = getattr(a, "q_norm", None), getattr(a, "k_norm", None)
    if any(biased) != all(biased) or a.o_proj.bias is not None:
        raise ValueError("attention with biases on only some projections is not supported")
    if (q_norm is None) != (k_norm is None):
        raise ValueError("attention with a norm on only one of queries and keys is not supported")
    bias = _fuse(qkv, "bias") if all(biased) else None
    norms = (None, None) if q_norm is None else (q_norm.weight, k_norm.weight)
    return (_fuse(qkv), bias, *norms)


def _activation(act_fn: Callable) -> str:
    """The name (in :data:`ACTIVATIONS`) of what an MLP's activation module computes, found by its values.

    Config keys differ between transformers versions (Gemma's ``hidden_act`` "gelu" meant the tanh
    approximation, later ``hidden_activation``): the module the checkpoint was loaded with is the truth.
    """
    probe = torch.linspace(-8.0, 8.0, 257)
    want = act_fn(probe)
    for name, fn in ACTIVATIONS.items():
        if torch.allclose(fn(probe), want, rtol=0.0, atol=1e-6):
            return name
    raise ValueError(f"the MLP activation {type(act_fn).__name__} is not supported by the packed engine")


def _check_norm(module: nn.Module, norm: Callable, weight: torch.Tensor, eps: float) -> None:
    """Refuse a model whose RMSNorm module computes something else than the norm we would run for it."""
    probe = torch.randn(4, weight.shape[-1], generator=torch.Generator().manual_seed(0)) * 3
    probe = probe.to(device=weight.device, dtype=module.weight.dtype)
    with torch.inference_mode():
        want, got = module(probe).float(), norm(probe, weight, eps).float()
    if not torch.allclose(got, want, rtol=2**-6, atol=1e-3, equal_nan=True):  # bf16: rounding apart at most
        raise ValueError(f"{type(module).__name__} does not compute the RMSNorm this model type is run with")


class Qwen3Scorer(nn.Module):
    """``forward(batch) -> [N] float32`` logits ``(yes - no)`` at each pair's last token.

    Runs Qwen3, Qwen2 and Gemma base models (see the module's docstring for what differs).
    """

    def __init__(self, base: nn.Module, head: torch.Tensor, compile: bool = False, quantize: str | None = None) -> None:
        super().__init__()
        cfg = base.config
        model_type = getattr(cfg, "model_type", "")
        if model_type not in ARCHITECTURES:
            raise ValueError(
                f"model type {model_type!r} is not supported by the packed engine ({', '.join(ARCHITECTURES)})"
            )
        arch = ARCHITECTURES[model_type]
        self.embed = base.embed_tokens
        self.norm = base.norm
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.n_q = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        if "sliding_attention" in (getattr(cfg, "layer_types", None) or ()):
            raise ValueError("sliding-window attention is not supported by the packed engine")
        self.eps = float(cfg.rms_norm_eps)
        self.scale = self.head_dim**-0.5
        rotary = base.rotary_emb
        self.register_buffer("inv_freq", rotary.inv_freq.detach().float().clone(), persistent=False)
        self.rope_scale = float(getattr(rotary, "attention_scaling", 1.0))
        self.register_buffer("head", head.detach().float().clone(), persistent=False)
        # Gemma: embeddings times sqrt(hidden_size) in the model's dtype (transformers' ``normalizer``)
        scale = torch.tensor(cfg.hidden_size**0.5).to(self.embed.weight) if arch.embed_scale else None
        self.register_buffer("embed_scale", scale, persistent=False)
        # The options the layer functions take (none for Qwen3/Qwen2: they run the functions as they are)
        self.norm_fn = offset_rms_norm if arch.norm_offset else rms_norm
        norm_weight = (lambda ln: 1.0 + ln.weight.detach().float()) if arch.norm_offset else (lambda ln: ln.weight)
        self.options: dict[str, Callable] = {"norm": offset_rms_norm} if arch.norm_offset else {}
        act = _activation(base.layers[0].mlp.act_fn)
        if act != "silu":
            self.options["act"] = ACTIVATIONS[act]
        self.final_norm = norm_weight(self.norm)
        _check_norm(self.norm, self.norm_fn, self.final_norm, self.eps)
        self.weights = []
        for layer in base.layers:
            a, m = layer.self_attn, layer.mlp
            if _activation(m.act_fn) != act:
                raise ValueError("layers with different MLP activations are not supported by the packed engine")
            self.weights.append(
                (
                    norm_weight(layer.input_layernorm),
                    *_attention_weights(a),
                    a.o_proj.weight,
                    norm_weight(layer.post_attention_layernorm),
                    _fuse([m.gate_proj, m.up_proj]),
                    m.down_proj.weight,
                )
            )
        self.layers = base.layers  # keeps the modules (and so the weights) registered
        self.quantize = quantize
        if quantize == "fp8":
            self.weights = [_to_fp8(w) for w in self.weights]
        elif quantize is not None:
            raise ValueError(f"unknown quantization {quantize!r}: use fp8 or none")
        self.residual_in_place = True  # see add_linear_; the engine turns it off where launching costs more
        self.use_eager()
        if compile:
            # Only the token counts vary between calls (forward marks them dynamic); the model's widths stay
            # static, so the generated kernels know their row sizes and vectorise. ``dynamic=True`` would make
            # every size symbolic: measured 1.5x slower element-wise kernels on an H200.
            self.layer = self._bind(torch.compile(decoder_layer, dynamic=None))
            self.pre = self._bind(torch.compile(pre_attention, dynamic=None), "norm")
            self.post = self._bind(torch.compile(post_attention, dynamic=None))
            self.mlp = self._bind(torch.compile(mlp_input, dynamic=None))
            self.compiled = True

    def _bind(self, fn: Callable, *names: str) -> Callable:
        """``fn`` with this architecture's options (those in ``names``, or all) bound; ``fn`` itself for Qwen3/Qwen2."""
        options = {k: v for k, v in self.options.items() if not names or k in names}
        return functools.partial(fn, **options) if options else fn

    def release_unquantized(self) -> None:
        """Free the bf16 projection matrices an FP8 scorer no longer reads (only for a model it owns)."""
        if self.quantize is None:
            return
        for layer in self.layers:
            a, m = layer.self_attn, layer.mlp
            for lin in (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj):
                lin.weight = nn.Parameter(lin.weight.data.new_empty(0), requires_grad=False)

    def use_eager(self) -> None:
        """Run the plain (uncompiled) functions, e.g. after ``torch.compile`` failed on this machine."""
        self.layer, self.pre = self._bind(decoder_layer), self._bind(pre_attention, "norm")
        self.post, self.mlp = self._bind(post_attention), self._bind(mlp_input)
        self.compiled = False

    def _rope(self, pos: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = pos[:, None].float() * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = (emb.cos() * self.rope_scale).to(dtype)[:, None]
        sin = (emb.sin() * self.rope_scale).to(dtype)[:, None]
        return cos, sin

    @torch.inference_mode()
    def forward(self, batch: PackedBatch) -> torch.Tensor:
        if self.embed_scale is None:
            x = self.embed(batch.ids)
        else:  # the plain lookup, scaled here (some transformers versions' embedding modules scale, some do not)
            x = F.embedding(batch.ids, self.embed.weight) * self.embed_scale
        cos, sin = self._rope(batch.pos, x.dtype)
        layout, last = batch.layout, batch.last
        if self.compiled:
            _token_dims_dynamic(x, cos, sin, *layout.tensors())
        *body, final = self.weights
        # FP8 runs the whole layer as one compiled function, so that each activation's quantization is
        # fused into the kernel that produces it (see quantize_rows); in place, two of them ran eagerly.
        in_place = self.residual_in_place and not (self.quantize and self.compiled)
        for w in body:
            if in_place:  # x is ours (the embedding's output): the residual adds go into it
                ln1, qkv, qkv_b, qn, kn, o_w, ln2, gate_up, down = w
                q, k, v = self.pre(x, ln1, qkv, qkv_b, kn, cos, sin, self.eps, self.n_q, self.n_kv, self.head_dim)
                o = attention(q, k, v, layout, self.scale, query_norm(qn, cos, sin, self.eps))
                add_linear_(x, o.reshape(o.shape[0], -1), o_w)
                add_linear_(x, self.mlp(x, ln2, gate_up, self.eps), down)
            else:
                x = self.layer(x, w, cos, sin, layout, self.scale, self.eps, self.n_q, self.n_kv, self.head_dim)
        # Final layer: only each pair's last position feeds the score, so finish it for those alone.
        ln1, qkv, qkv_b, qn, kn, o_w, ln2, gate_up, down = final
        q, k, v = self.pre(x, ln1, qkv, qkv_b, kn, cos, sin, self.eps, self.n_q, self.n_kv, self.head_dim)
        o = attention(q[last], k, v, batch.last_layout, self.scale, query_norm(qn, cos[last], sin[last], self.eps))
        x = x[last]
        if self.compiled:
            _token_dims_dynamic(x, o)
        x = self.post(x, o, o_w, ln2, gate_up, down, self.eps)
        return self.norm_fn(x, self.final_norm, self.eps).float() @ self.head
