"""Loading a checkpoint (Hugging Face id or local directory) and deciding how to score it.

The model family is read from ``config.json``:

- ``qwen3`` + ``*ForCausalLM``: the original Qwen3-Reranker; score = sigmoid(logit_yes - logit_no)
  at the last position, with the yes/no token ids taken from the tokenizer.
- ``qwen3`` + ``*ForSequenceClassification``: the converted checkpoints whose single logit
  already is ``yes - no``; same prompt, same score.
- any other ``*ForSequenceClassification``: an encoder cross-encoder (BGE, MiniLM...): sigmoid of
  the single logit, or softmax's positive class when the head has two labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from rankserve import prompts
from rankserve.errors import ModelLoadError

QWEN_CAUSAL = "qwen3-causal-lm"
QWEN_SEQ_CLS = "qwen3-seq-cls"
CROSS_ENCODER = "cross-encoder"

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


def detect_kind(config) -> str:
    arch = (getattr(config, "architectures", None) or [""])[0]
    if config.model_type == "qwen3" and arch.endswith("ForCausalLM"):
        return QWEN_CAUSAL
    if config.model_type == "qwen3" and arch.endswith("ForSequenceClassification"):
        return QWEN_SEQ_CLS
    if arch.endswith("ForSequenceClassification"):
        return CROSS_ENCODER
    raise ModelLoadError(
        f"architecture {arch or config.model_type!r} is not supported: RankServe serves Qwen3 rerankers "
        "(Qwen3ForCausalLM, Qwen3ForSequenceClassification) and *ForSequenceClassification cross-encoders"
    )


@dataclass
class Loaded:
    kind: str
    config: object
    tokenizer: object
    model: torch.nn.Module
    head: torch.Tensor | None  # yes-minus-no direction for Qwen3 kinds


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

    if constants.HF_HUB_OFFLINE:
        if isinstance(try_to_load_from_cache(model, "config.json"), str):
            return None
        return "HF_HUB_OFFLINE is set and it is not in the local Hugging Face cache"
    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return None
    try:
        HfApi().model_info(model, timeout=HUB_PROBE_TIMEOUT)
    except RepositoryNotFoundError:
        return "no such model repository on the Hugging Face Hub (or it is private: set HF_TOKEN)"
    except HfHubHTTPError:
        return None  # gated, rate limited...: the download itself says what is wrong
    except Exception as exc:  # noqa: BLE001 - DNS, refused, TLS, timeout: all mean "no Hub from here"
        return f"could not reach the Hugging Face Hub ({type(exc).__name__})"
    return None


def load(model: str, device: torch.device, dtype: torch.dtype) -> Loaded:
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
    kind = detect_kind(config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"could not load the tokenizer of {model!r}: {exc}") from exc
    cls = AutoModelForCausalLM if kind == QWEN_CAUSAL else AutoModelForSequenceClassification
    kwargs = {"attn_implementation": "sdpa"}
    try:
        hf_model = cls.from_pretrained(model, dtype=dtype, **kwargs)
    except TypeError:  # transformers < 4.56 spells it torch_dtype
        hf_model = cls.from_pretrained(model, torch_dtype=dtype, **kwargs)
    except OSError as exc:
        raise ModelLoadError(f"could not load the weights of {model!r}: {exc}") from exc
    return inspect_model(hf_model.to(device).eval(), tokenizer, model)


def inspect_model(hf_model: torch.nn.Module, tokenizer, name: str = "model") -> Loaded:
    """Family and yes-minus-no head of an already-built model (also used for random-weight benchmarks)."""
    config = hf_model.config
    kind = detect_kind(config)
    head = None
    if kind == QWEN_CAUSAL:
        yes, no = (_token_id(tokenizer, t, name) for t in (prompts.YES_TOKEN, prompts.NO_TOKEN))
        weight = hf_model.get_output_embeddings().weight
        head = weight[yes].float() - weight[no].float()
    elif kind == QWEN_SEQ_CLS:
        weight = hf_model.score.weight
        if weight.shape[0] != 1:
            raise ModelLoadError(
                f"{name!r}: a Qwen3 sequence-classification reranker must have one label (yes - no), "
                f"this one has {weight.shape[0]}"
            )
        head = weight[0].float()
    return Loaded(kind, config, tokenizer, hf_model, head)


def _token_id(tokenizer, token: str, model: str) -> int:
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == tokenizer.unk_token_id or ids != [tid]:
        raise ModelLoadError(f"the tokenizer of {model!r} has no single token {token!r}; is it a Qwen3-Reranker?")
    return tid
