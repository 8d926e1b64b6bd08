"""Loading a checkpoint (Hugging Face id or local directory) and deciding how to score it.

The model's family (:mod:`rankserve.engine.families`: template, head, activation, runner) is read
from ``config.json`` and the checkpoint's name, or given (``family=``, ``--family``):

- LLM families: Qwen3 (Qwen3-Reranker, zerank, ctxl-rerank-v2), Qwen2 (mxbai-rerank-v2) and Gemma
  (bge-reranker-v2-gemma), ``*ForCausalLM`` or a one-row ``*ForSequenceClassification`` conversion: the
  packed engine (:mod:`rankserve.engine.qwen3`).
- any other ``*ForSequenceClassification``: an encoder cross-encoder (BGE, MiniLM...): sigmoid of
  the single logit, or softmax's positive class when the head has two labels. XLM-R and ModernBERT
  run packed (:mod:`rankserve.engine.encoders`), other encoders through the padded transformers forward.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from rankserve.engine import families
from rankserve.errors import ModelLoadError

QWEN_CAUSAL = "qwen3-causal-lm"
QWEN_SEQ_CLS = "qwen3-seq-cls"
QWEN2_CAUSAL = "qwen2-causal-lm"
QWEN2_SEQ_CLS = "qwen2-seq-cls"
GEMMA_CAUSAL = "gemma-causal-lm"
GEMMA_SEQ_CLS = "gemma-seq-cls"
CROSS_ENCODER = "cross-encoder"
LISTWISE = "listwise"
"""Listwise rerankers (jina-reranker-v3): a transformers Qwen3 decoder and a projector, one window a pass."""
CAUSAL_KINDS = {"qwen3": QWEN_CAUSAL, "qwen2": QWEN2_CAUSAL, "gemma": GEMMA_CAUSAL}
SEQ_CLS_KINDS = {"qwen3": QWEN_SEQ_CLS, "qwen2": QWEN2_SEQ_CLS, "gemma": GEMMA_SEQ_CLS}
"""LLM rerankers (by model type) as causal LMs, and converted to a one-row ``*ForSequenceClassification``
(scored by its classifier row)."""
PACKED_KINDS = (*CAUSAL_KINDS.values(), *SEQ_CLS_KINDS.values())
"""Kinds the packed engine runs: every LLM reranker kind."""
"""LLM rerankers converted to a one-row ``*ForSequenceClassification`` (scored by its classifier row)."""

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` (the GPU if there is one), ``cpu``, ``cuda`` or ``cuda:N``; anything else is a clear error."""
    if str(device) != "auto":
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ModelLoadError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc
        if dev.type not in ("cpu", "cuda"):
            raise ModelLoadError(f"device {device!r} is not supported: use auto, cpu, cuda or cuda:N")
        if dev.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if count == 0:
                raise ModelLoadError(f"device {device!r} asked for, but no CUDA GPU is available")
            if dev.index is not None and dev.index >= count:
                raise ModelLoadError(f"device {device!r} asked for, but there are only {count} CUDA GPU(s)")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """bf16 on GPU (fp16 where the GPU lacks bf16), fp32 on CPU, unless asked otherwise."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16")
    return _DTYPES[dtype]


def detect_kind(config, family: families.Family | None = None, name: str = "model") -> str:
    """How the checkpoint is run: the packed engine (Qwen3, Qwen2, Gemma; causal LM or seq-cls conversion),
    or an encoder."""
    family = family or families.resolve(config, name)
    if family.runner == families.LISTWISE:
        return LISTWISE
    seq_cls = (getattr(config, "architectures", None) or [""])[0].endswith("ForSequenceClassification")
    if family.runner == families.PACKED:
        model_type = getattr(config, "model_type", "")
        kinds = SEQ_CLS_KINDS if seq_cls else CAUSAL_KINDS
        if model_type not in kinds:
            raise ModelLoadError(f"the packed engine does not run {model_type!r} models (family {family.name})")
        return kinds[model_type]
    return CROSS_ENCODER


@dataclass
class Loaded:
    kind: str
    config: object
    tokenizer: object
    model: torch.nn.Module
    head: torch.Tensor | None  # the packed engine's fp32 score direction (None for encoders)
    family: families.Family = families.FAMILIES["cross-encoder"]


WHAT_TO_DO = (
    "Give a local model directory (--model /path/with/config.json), set HF_HUB_OFFLINE=1 to use only "
    "models already downloaded, or build a tiny test model with `rankserve make-tiny-model DIR`"
)
HUB_PROBE_TIMEOUT = 10.0


def hub_problem(model: str) -> str | None:
    """Why a Hugging Face id cannot be fetched, found with one quick request; None if it can (or is cached).

    transformers would otherwise retry an unreachable Hub for ~25 s, logging every retry, and
    then call a mistyped id "not a model"; this says in one line which of the two it is.
    """
    from huggingface_hub import HfApi, constants, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return None
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set and it is not in the local Hugging Face cache"
    try:
        HfApi().model_info(model, timeout=HUB_PROBE_TIMEOUT)
    except RepositoryNotFoundError:
        return "no such model repository on the Hugging Face Hub (or it is private: set HF_TOKEN)"
    except HfHubHTTPError:
        return None  # gated, rate limited...: the download itself says what is wrong
    except Exception as exc:  # noqa: BLE001 - DNS, refused, TLS, timeout: all mean "no Hub from here"
        return f"could not reach the Hugging Face Hub ({type(exc).__name__})"
    return None


def load(model: str, device: torch.device, dtype: torch.dtype, family: str | None = None) -> Loaded:
    import transformers
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    transformers.utils.logging.disable_progress_bar()  # keeps server logs and CLI output readable

    looks_local = model.startswith(("/", "./", "../", "~")) or os.path.exists(model)
    if looks_local and not os.path.isdir(os.path.expanduser(model)):
        raise ModelLoadError(f"{model!r} is not a model: no such directory")
    if looks_local and not os.path.isfile(os.path.join(os.path.expanduser(model), "config.json")):
        raise ModelLoadError(f"{model!r} is not a model: no config.json in that directory. {WHAT_TO_DO}")
    if not looks_local:
        problem = hub_problem(model)
        if problem:
            raise ModelLoadError(f"cannot load {model!r}: {problem}. {WHAT_TO_DO}")
    try:
        config = AutoConfig.from_pretrained(os.path.expanduser(model) if looks_local else model)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"{model!r} is not a model: expected a Hugging Face model id or a directory with config.json ({first})"
        ) from exc
    spec = families.resolve(config, model, family)
    kind = detect_kind(config, spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"could not load the tokenizer of {model!r}: {exc}") from exc
    if kind == LISTWISE:
        from rankserve.engine import listwise_model

        return Loaded(kind, config, tokenizer, listwise_model.load(model, device, dtype), None, spec)
    cls = AutoModelForCausalLM if kind in CAUSAL_KINDS.values() else AutoModelForSequenceClassification
    kwargs = {"attn_implementation": "sdpa"}
    try:
        hf_model = cls.from_pretrained(model, dtype=dtype, **kwargs)
    except TypeError:  # transformers < 4.56 spells it torch_dtype
        hf_model = cls.from_pretrained(model, torch_dtype=dtype, **kwargs)
    except OSError as exc:
        raise ModelLoadError(f"could not load the weights of {model!r}: {exc}") from exc
    return inspect_model(hf_model.to(device).eval(), tokenizer, model, family)


def inspect_model(hf_model: torch.nn.Module, tokenizer, name: str = "model", family: str | None = None) -> Loaded:
    """Family, runner and score head of an already-built model (also used for random-weight benchmarks).

    Head rows come from the output embeddings (``lm_head``, tied or not) for causal LMs and from the
    one-row ``score`` layer for sequence-classification conversions. The packed engine gets one fp32
    direction (a token pair's difference computed in fp32, as the seq-cls conversion script does).
    """
    config = hf_model.config
    spec = families.resolve(config, name, family)
    kind = detect_kind(config, spec)
    if kind in (CROSS_ENCODER, LISTWISE):
        return Loaded(kind, config, tokenizer, hf_model, None, spec)
    if kind in SEQ_CLS_KINDS.values():
        weight = hf_model.score.weight
        if weight.shape[0] != 1:
            raise ModelLoadError(
                f"{name!r}: a sequence-classification conversion of an LLM reranker must have one label "
                f"(its score row), this one has {weight.shape[0]}"
            )
        rows = weight[:1]
    else:
        weight = hf_model.get_output_embeddings().weight
        bias = getattr(hf_model.get_output_embeddings(), "bias", None)
        if bias is not None:
            raise ModelLoadError(f"{name!r}: an output layer with a bias is not supported for {spec.name}")
        head = spec.head
        ids = [head.vocab_id] if head.kind == "vocab_id" else [_token_id(tokenizer, t, name, spec) for t in head.tokens]
        rows = weight[ids]
    direction = rows[0].float() - rows[1].float() if rows.shape[0] == 2 else rows[0].float()
    return Loaded(kind, config, tokenizer, hf_model, direction, spec)


def _token_id(tokenizer, token: str, model: str, family: families.Family) -> int:
    """The id the card reads (``tokenizer(token, add_special_tokens=False)["input_ids"][0]``), if it is one token."""
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise ModelLoadError(
            f"the tokenizer of {model!r} has no single token {token!r}; is it a {family.title} checkpoint?"
        )
    return ids[0]
