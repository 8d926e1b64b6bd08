"""Which reranker a checkpoint is, and how its model card scores it.

A :class:`Family` says three things about a checkpoint: its *template* (how the prompt's token ids
are built, see :mod:`rankserve.engine.templates`), its *head* (which output rows give the raw
score: a token pair's difference, one token's logit, a fixed vocabulary id or a classifier row)
and its *activation* (how the raw score becomes the served one). It also names the *runner*: the
packed engine (:mod:`rankserve.engine.qwen3`) for LLM rerankers (Qwen3, Qwen2 and Gemma); encoders run
packed too where :mod:`rankserve.engine.encoders` has a runner for the model type (XLM-R and ModernBERT),
a transformers ``*ForSequenceClassification`` forward otherwise.

The family is recognised from ``config.json`` (``model_type`` and ``architectures``) and the
checkpoint's name or path; ``--family NAME`` overrides it for fine-tunes. A causal LM that is not
Qwen3 and matches no family is refused at load time: scoring it with a guessed prompt and head
would give numbers that look like scores and mean nothing.

This module imports no torch: the HTTP layer describes score semantics from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rankserve.errors import ModelLoadError

PACKED = "packed"
"""The packed, padding-free decoder engine with per-request prefix reuse (the fast path): Qwen3, Qwen2, Gemma."""
SEQ_CLS = "seq-cls"
"""Encoder cross-encoders (``*ForSequenceClassification``): a packed runner for XLM-R and ModernBERT
(:mod:`rankserve.engine.encoders`), the padded transformers forward for other model types."""

LISTWISE = "listwise"
"""Listwise rerankers: the query and a window of documents in one causal sequence (:mod:`rankserve.engine.listwise`);
a document's score depends on the other documents of its request."""

LISTWISE_ARCHITECTURES = {"JinaForRanking": "jina-reranker-v3"}
"""``architectures[0]`` values that name a listwise family (the checkpoint's own remote-code class)."""

DECODER_TYPES = frozenset({"qwen2", "qwen3", "gemma", "gemma2", "gemma3", "llama", "mistral", "phi3", "olmo2"})
"""Model types whose ``*ForSequenceClassification`` conversions need their family's prompt template."""


@dataclass(frozen=True)
class Activation:
    """``sigmoid(scale * x + shift)``, or the raw value itself. A plain value: it pickles."""

    sigmoid: bool = True
    scale: float = 1.0
    shift: float = 0.0

    def __call__(self, x: float) -> float:
        if not self.sigmoid:
            return float(x)
        z = self.scale * x + self.shift
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)  # no overflow for very negative logits
        return e / (1.0 + e)

    @property
    def formula(self) -> str:
        if not self.sigmoid:
            return "x"
        inner = "x" if self.scale == 1.0 else f"x/{1 / self.scale:g}" if self.scale < 1 else f"{self.scale:g}*x"
        if self.shift:
            inner = f"{inner} {'-' if self.shift < 0 else '+'} {abs(self.shift):g}"
        return f"sigmoid({inner})"

    @property
    def probability(self) -> bool:
        return self.sigmoid


SIGMOID = Activation()
RAW = Activation(sigmoid=False)


@dataclass(frozen=True)
class Head:
    """Which output rows make the raw score.

    ``token_pair``: logit(tokens[0]) - logit(tokens[1]); ``token``: logit(tokens[0]);
    ``vocab_id``: the logit of a fixed vocabulary id; ``classifier``: the checkpoint's own one-row
    head (``*ForSequenceClassification``; a converted LLM reranker's row is its token difference);
    ``listwise``: the cosine of projected embeddings read at marker tokens (see :mod:`rankserve.engine.listwise`).
    """

    kind: str
    tokens: tuple[str, ...] = ()
    vocab_id: int | None = None

    def describe(self) -> str:
        if self.kind == "token_pair":
            return f'logit("{self.tokens[0]}") - logit("{self.tokens[1]}") at the last token'
        if self.kind == "token":
            return f'logit("{self.tokens[0]}") at the last token'
        if self.kind == "vocab_id":
            return f"logit of vocabulary id {self.vocab_id} at the last token"
        return "the classifier's logit"


@dataclass(frozen=True)
class Family:
    """One reranker family: template, head, activation, runner, and where that recipe comes from."""

    name: str
    title: str
    model_types: tuple[str, ...]
    template: str
    head: Head
    activation: Activation
    runner: str
    licence: str
    source: str
    match: tuple[str, ...] = ()  # lower-case substrings of a checkpoint name that mean this family
    round_bf16: bool = False  # the card rounds its raw score to bfloat16 before returning it
    char_caps: tuple[int, int] | None = None  # (query, document) characters kept before templating

    def describe(self, classifier: bool = False) -> dict:
        """What a score means, for ``/v1/models`` and the UI."""
        head = Head("classifier") if classifier else self.head
        raw = head.describe()
        if classifier and self.head.kind != "classifier":
            raw = f"the classifier's logit (a converted {self.head.describe()})"
        if self.round_bf16:
            raw += ", rounded to bfloat16"
        return {
            "family": self.name,
            "title": self.title,
            "score": "probability"
            if self.activation.probability
            else "cosine similarity"
            if head.kind == "listwise"
            else "raw logit",
            "formula": self.activation.formula.replace("x", "raw") if self.activation.sigmoid else "raw",
            "raw": raw,
            "licence": self.licence,
        }


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "qwen3-reranker",
            "Qwen3-Reranker",
            ("qwen3",),
            "qwen3-reranker",
            Head("token_pair", ("yes", "no")),
            SIGMOID,
            PACKED,
            "Apache-2.0",
            "Qwen/Qwen3-Reranker-0.6B model card (transformers usage); seq-cls conversions: "
            "vllm-project/vllm examples/pooling/score/convert_model_to_seq_cls.py (from_2_way_softmax)",
            ("qwen3-reranker",),
        ),
        Family(
            "zerank-2",
            "ZeroEntropy zerank-2",
            ("qwen3",),
            "zerank",
            Head("token", ("Yes",)),
            Activation(scale=0.2),
            PACKED,
            "CC-BY-NC-4.0 (non-commercial)",
            "https://huggingface.co/zeroentropy/zerank-2 (card: predict() returns the raw Yes logit; "
            "(scores / 5).sigmoid() is the 0-1 score); template from the zerank-1 remote code modeling_zeranker.py",
            ("zerank-2", "zerank2"),
        ),
        Family(
            "zerank-1",
            "ZeroEntropy zerank-1 / zerank-1-small",
            ("qwen3",),
            "zerank",
            Head("token", ("Yes",)),
            Activation(scale=0.2),
            PACKED,
            "zerank-1: CC-BY-NC-4.0 (non-commercial); zerank-1-small: Apache-2.0",
            "https://huggingface.co/zeroentropy/zerank-1 remote code modeling_zeranker.py "
            "(query[:2000], document[:10000], stripped; sigmoid(logit_yes / 5))",
            ("zerank-1", "zerank1"),
            char_caps=(2_000, 10_000),
        ),
        Family(
            "ctxl-rerank-v2",
            "Contextual AI ctxl-rerank-v2-instruct-multilingual",
            ("qwen3",),
            "ctxl",
            Head("vocab_id", vocab_id=0),
            RAW,
            PACKED,
            "CC-BY-NC-SA-4.0 (non-commercial)",
            "https://huggingface.co/ContextualAI/ctxl-rerank-v2-instruct-multilingual-1b card "
            "(format_prompts, infer_w_hf: next_logits[:, 0].to(torch.bfloat16))",
            ("ctxl-rerank",),
            round_bf16=True,
        ),
        Family(
            "mxbai-rerank-v2",
            "mixedbread mxbai-rerank-large-v2",
            ("qwen2",),
            "mxbai",
            Head("token_pair", ("1", "0")),
            Activation(shift=-6.0),
            PACKED,
            "Apache-2.0",
            "github mixedbread-ai/mxbai-rerank @ 8e709dc mxbai_rerank/mxbai_rerank_v2.py and utils.py "
            "(sigmoid_normalize with estimated_max 12.0)",
            ("mxbai-rerank",),
        ),
        Family(
            "mxbai-rerank-base-v2",
            "mixedbread mxbai-rerank-base-v2",
            ("qwen2",),
            "mxbai",
            Head("token_pair", ("1", "0")),
            Activation(shift=-4.5),
            PACKED,
            "Apache-2.0",
            "github mixedbread-ai/mxbai-rerank @ 8e709dc mxbai_rerank/mxbai_rerank_v2.py and utils.py "
            "(sigmoid_normalize with estimated_max 9.0)",
            ("mxbai-rerank-base",),
        ),
        Family(
            "bge-reranker-v2-gemma",
            "BAAI bge-reranker-v2-gemma",
            ("gemma",),
            "bge-gemma",
            Head("token", ("Yes",)),
            SIGMOID,
            PACKED,
            "Apache-2.0 (card); the Gemma base model's terms of use may also apply",
            "BAAI/bge-reranker-v2-gemma card get_inputs (max_length 1024); github FlagOpen/FlagEmbedding @ 7ed43d6 "
            "FlagEmbedding/inference/reranker/decoder_only/base.py (normalize=True: sigmoid)",
            ("bge-reranker-v2-gemma",),
        ),
        Family(
            "jina-reranker-v3",
            "Jina AI jina-reranker-v3 (listwise)",
            ("qwen3",),
            "jina-listwise",
            Head("listwise"),
            RAW,
            LISTWISE,
            "CC-BY-NC-4.0 (non-commercial; the card: listed on AWS and Azure, other commercial use by agreement)",
            "https://huggingface.co/jinaai/jina-reranker-v3 remote code modeling.py (format_docs_prompts_func, "
            "JinaForRanking.forward, _truncate_texts, rerank: 125-document windows, weighted query merge)",
        ),
        Family(
            "cross-encoder",
            "Encoder cross-encoder",
            (),
            "cross-encoder",
            Head("classifier"),
            SIGMOID,
            SEQ_CLS,
            "see the model card",
            "sentence-transformers CrossEncoder (Sigmoid for one label); BAAI/bge-reranker-v2-m3: FlagReranker "
            "normalize=True; Alibaba-NLP/gte-reranker-modernbert-base card",
        ),
    )
}


def get(name: str) -> Family:
    """The family called ``name``; a clear error listing the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ModelLoadError(f"unknown --family {name!r}: choose one of {', '.join(FAMILIES)}") from None


def _by_name(names: list[str]) -> Family | None:
    """The family whose longest pattern occurs in one of the names (``mxbai-rerank-base`` beats ``mxbai-rerank``)."""
    hits = [(len(m), f) for f in FAMILIES.values() for m in f.match for n in names if m in n]
    return max(hits, key=lambda h: h[0])[1] if hits else None


def resolve(config, name: str, override: str | None = None) -> Family:
    """The checkpoint's family: ``override``, else its name, else its configuration.

    ``name`` is the id or path given; ``config._name_or_path`` is tried too (a local copy of a
    hub checkpoint keeps it).
    """
    model_type = getattr(config, "model_type", "")
    arch = (getattr(config, "architectures", None) or [""])[0]
    if arch in LISTWISE_ARCHITECTURES:
        family = FAMILIES[LISTWISE_ARCHITECTURES[arch]]
        if override and override != family.name:
            raise ModelLoadError(f"{arch} checkpoints are scored listwise (family {family.name}), not as {override}")
        if model_type not in family.model_types:
            raise ModelLoadError(f"{arch} is a {'/'.join(family.model_types)} architecture; this one is {model_type!r}")
        if getattr(config, "use_sliding_window", False) or "sliding_attention" in (
            getattr(config, "layer_types", None) or ()
        ):
            raise ModelLoadError(
                f"{name!r} has sliding-window attention layers; {family.title} is verified for full attention only"
            )
        return family
    seq_cls = arch.endswith("ForSequenceClassification")
    if override and get(override).runner == LISTWISE:
        raise ModelLoadError(f"--family {override} needs a {'/'.join(LISTWISE_ARCHITECTURES)} checkpoint, not {arch}")
    if not (seq_cls or arch.endswith("ForCausalLM")):
        raise ModelLoadError(
            f"architecture {arch or model_type!r} is not supported: RankServe serves *ForCausalLM rerankers of a "
            f"known family and *ForSequenceClassification rerankers (families: {', '.join(FAMILIES)})"
        )
    if override:
        family = get(override)
        if family.runner == SEQ_CLS and not seq_cls:
            raise ModelLoadError(f"--family {override} needs a *ForSequenceClassification model, not {arch}")
        if family.runner != SEQ_CLS and model_type not in family.model_types:
            raise ModelLoadError(
                f"--family {override} is a {'/'.join(family.model_types)} family; this checkpoint is {model_type!r}"
            )
        return family
    names = [str(name).lower(), str(getattr(config, "_name_or_path", "") or "").lower()]
    family = _by_name(names)
    if family is not None and model_type in family.model_types:
        return family
    if model_type == "qwen3":
        return FAMILIES["qwen3-reranker"]
    if seq_cls and model_type not in DECODER_TYPES:
        return FAMILIES["cross-encoder"]
    kind = "sequence-classification conversion" if seq_cls else "causal LM"
    fitting = [f.name for f in FAMILIES.values() if model_type in f.model_types]
    hint = f" ({model_type} families: {', '.join(fitting)})" if fitting else ""
    raise ModelLoadError(
        f"{name!r} is a {model_type} {kind} of no known reranker family, so its prompt and score head are "
        f"unknown; pass --family NAME (family=NAME in Python) to say which recipe it follows{hint}. "
        f"Families: {', '.join(FAMILIES)}"
    )
