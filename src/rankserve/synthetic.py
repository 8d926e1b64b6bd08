"""Random-weight models of real reranker architectures, for tests, demos and benchmarks.

No weights can be downloaded in CI, so the test suite builds tiny checkpoints with the real
``transformers`` classes and saves them with ``save_pretrained``; RankServe then loads them
through the same ``from_pretrained`` path a user's real checkpoint takes. ``rankserve
make-tiny-model DIR`` exposes the same builder so a new user can try the CLI offline.
"""

from __future__ import annotations

from pathlib import Path

import torch

QWEN_PRETOKENIZE = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_ADDED = ["<think>", "</think>"]

_CORPUS = [
    "yes",
    "no",
    "yes no yes no",
    "The quick brown fox jumps over the lazy dog. Judge whether the Document meets the requirements.",
    "Given a web search query, retrieve relevant passages that answer the query",
    "Instruct Query Document system user assistant think",
    "服务器CPU使用率持续100%怎么办? 如何申请软件著作权? 检查进程, 优化代码, 增加服务器。",
    "Dockerコンテナのメモリ使用量を制限するには --memory オプションを使います。日本語の文書です。",
    "كيف أحول ملف PDF إلى نص في بايثون؟ استخدم مكتبة pypdf لاستخراج النص.",
    "def merge(a, b):\n    return sorted(a + b)  # heapq.merge is faster for sorted input\n",
    "import pandas as pd\ndf = pd.read_csv('data.csv', encoding='gbk')  # UnicodeDecodeError fix",
    "Paris is the capital of France. Berlin is the capital of Germany. 1234567890",
]


def build_tiny_qwen_tokenizer(path: str | Path, vocab_size: int = 1200):
    """A small byte-level BPE tokenizer with Qwen's pre-tokenizer, special tokens and yes/no."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=QWEN_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left"
    )
    fast.add_tokens(QWEN_ADDED)
    for word in ("yes", "no"):
        if fast(word, add_special_tokens=False)["input_ids"] != [fast.convert_tokens_to_ids(word)]:
            raise RuntimeError(f"tiny tokenizer did not learn {word!r} as one token")
    fast.save_pretrained(str(path))
    return fast


def tiny_qwen3_config(vocab_size: int, **overrides):
    from transformers import Qwen3Config

    cfg = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=40960,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        initializer_range=0.3,
        architectures=["Qwen3ForCausalLM"],
    )
    cfg.update(overrides)
    return Qwen3Config(**cfg)


def build_tiny_qwen_reranker(
    path: str | Path, tokenizer_dir: str | Path | None = None, seed: int = 0, **config_overrides
) -> Path:
    """Save a random-weight ``Qwen3ForCausalLM`` reranker (tokenizer included) at ``path``.

    The yes/no output rows are scaled up so scores spread over (0, 1) instead of sitting at
    0.5, which makes score-equality tests meaningful.
    """
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if tokenizer_dir is None:
        tokenizer = build_tiny_qwen_tokenizer(path)
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        tokenizer.save_pretrained(str(path))
    torch.manual_seed(seed)
    config = tiny_qwen3_config(len(tokenizer), **config_overrides)
    model = Qwen3ForCausalLM(config).eval()
    with torch.no_grad():
        out = model.get_output_embeddings().weight
        for word in ("yes", "no"):
            out[tokenizer.convert_tokens_to_ids(word)] *= 2.0
    model.save_pretrained(str(path))
    return path


def convert_to_seq_cls(causal_dir: str | Path, path: str | Path) -> Path:
    """The community conversion: one logit whose weight is ``lm_head[yes] - lm_head[no]``."""
    from transformers import AutoTokenizer, Qwen3ForCausalLM, Qwen3ForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(causal_dir))
    causal = Qwen3ForCausalLM.from_pretrained(str(causal_dir)).eval()
    config = causal.config
    config.num_labels = 1
    config.architectures = ["Qwen3ForSequenceClassification"]
    config.pad_token_id = tokenizer.pad_token_id
    seq = Qwen3ForSequenceClassification(config).eval()
    seq.model.load_state_dict(causal.model.state_dict())
    with torch.no_grad():
        w = causal.get_output_embeddings().weight
        yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
        seq.score.weight.copy_((w[yes] - w[no])[None, :])
    seq.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return Path(path)


def build_tiny_bert_cross_encoder(path: str | Path, num_labels: int = 1, seed: int = 0) -> Path:
    """A random-weight ``BertForSequenceClassification`` with a small WordPiece vocabulary."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    words = sorted({w.strip(".,?!:;()'\"").lower() for line in _CORPUS for w in line.split()} - {""})
    chars = sorted({c for line in _CORPUS for c in line.lower() if not c.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + chars + [f"##{c}" for c in chars]
    vocab = list(dict.fromkeys(vocab))
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5 takes the vocabulary itself (``vocab=``); a ``vocab_file=`` would be ignored, leaving 5 tokens
    tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, model_max_length=512)
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=num_labels,
        initializer_range=0.2,
        architectures=["BertForSequenceClassification"],
    )
    BertForSequenceClassification(config).eval().save_pretrained(str(path))
    return path


def random_weights_model(config_path: str | Path, tokenizer_dir: str | Path, path: str | Path) -> Path:
    """A checkpoint of a real architecture (e.g. Qwen3-Reranker-8B's config.json) with random weights."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config_path = Path(config_path)
    config = AutoConfig.from_pretrained(str(config_path.parent if config_path.is_file() else config_path))
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(path))
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(path))
    return Path(path)


def build_tiny_gemma_tokenizer(path: str | Path, vocab_size: int = 600):
    """A small SentencePiece-style BPE tokenizer with Gemma's special ids (<pad> 0, <eos> 1, <bos> 2) and "Yes"."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=1, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"], show_progress=False
    )
    tok.train_from_iterator([*_CORPUS, "Yes No A: B: passage query", "Yes"] * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        padding_side="left",
    )  # fmt: skip
    if fast("Yes", add_special_tokens=False)["input_ids"] != [fast.convert_tokens_to_ids("Yes")]:
        raise RuntimeError("tiny tokenizer did not learn 'Yes' as one token")
    fast.save_pretrained(str(path))
    return fast


TINY_GEMMA = dict(num_key_value_heads=1, head_dim=256, initializer_range=0.1)
"""Gemma-2B's attention shape at tiny width: one key/value head (multi-query), heads of 256. Smaller weights
than the other tiny models: with heads of 256 the larger ones make fp32 rounding noise reach 1e-5 of a score."""

TINY_LLM = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    head_dim=16, initializer_range=0.3,
)  # fmt: skip
"""The dimensions of every tiny LLM reranker (Qwen3, Qwen2 and Gemma classes alike)."""


def build_tiny_llm_reranker(
    path: str | Path, architecture: str, tokenizer, boost: tuple[str, ...] = (), seed: int = 0, **overrides
) -> Path:
    """Save a random-weight LLM reranker of a real ``transformers`` class (``Qwen2ForCausalLM``, ``GemmaForCausalLM``).

    The output rows of the ``boost`` tokens are scaled up so that scores spread out. The directory's
    name is what family recognition reads (e.g. ``.../mxbai-rerank-base-v2-tiny``). Biases and RMSNorm
    weights get random values: initialisation makes them zeros or ones, which would hide a missing bias
    or a norm's wrong weight offset (Gemma's ``1 + weight``).
    """
    import transformers

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(path))
    cls = getattr(transformers, architecture)
    config_cls = cls.config_class
    torch.manual_seed(seed)
    cfg = dict(TINY_LLM, vocab_size=len(tokenizer), tie_word_embeddings=True, architectures=[architecture])
    cfg["pad_token_id"] = tokenizer.pad_token_id
    cfg.update(overrides)
    if tokenizer.bos_token_id is not None:
        cfg["bos_token_id"] = tokenizer.bos_token_id
    model = cls(config_cls(**cfg)).eval()
    with torch.no_grad():
        for module in model.modules():  # initialisation zeroes biases (Qwen2's q/k/v): give them values to get right
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.normal_(std=model.config.initializer_range)
            if type(module).__name__.endswith("RMSNorm"):
                module.weight.add_(torch.randn_like(module.weight) * 0.3)
        out = model.get_output_embeddings().weight
        for word in boost:
            out[tokenizer(word, add_special_tokens=False)["input_ids"][0]] *= 3.0
    model.save_pretrained(str(path))
    return path


def _randomise_biases_and_norms(model: torch.nn.Module, std: float) -> None:
    """Initialisation zeroes biases and sets norms to 1: give them values a runner has to get right."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.normal_(std=std)
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.normal_(mean=1.0, std=std)
                if module.bias is not None:
                    module.bias.normal_(std=std)


def _tiny_words() -> list[str]:
    return sorted({w for line in _CORPUS for w in line.split()})


def build_tiny_xlmr_cross_encoder(path: str | Path, num_labels: int = 1, seed: int = 0, **overrides) -> Path:
    """A random-weight ``XLMRobertaForSequenceClassification`` (bge-reranker-v2-m3's architecture, tiny).

    Its tokenizer is XLM-R's (a SentencePiece-style Unigram with ``<s> A </s></s> B </s>`` pairs and
    ``<pad>`` = 1, so positions start at 2) over a small vocabulary of the corpus's words and characters.
    """
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    chars = sorted({c for line in _CORPUS for c in line if not c.isspace()})
    pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("<mask>", 0.0)]
    pieces += [("▁" + w, -5.0) for w in _tiny_words()] + [("▁", -8.0)]
    pieces += [(c, -10.0) for c in chars] + [("▁" + c, -9.0) for c in chars]
    tokenizer = XLMRobertaTokenizer(vocab=list(dict(pieces).items()), model_max_length=128)
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(seed)
    cfg = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=130,  # 128 tokens after the padding index's offset
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=num_labels,
        initializer_range=0.2,
        architectures=["XLMRobertaForSequenceClassification"],
    )
    cfg.update(overrides)
    model = XLMRobertaForSequenceClassification(XLMRobertaConfig(**cfg)).eval()
    _randomise_biases_and_norms(model, 0.2)
    with torch.no_grad():
        model.classifier.out_proj.weight *= 8.0  # scores spread over (0, 1) rather than sit near 0.5
    model.save_pretrained(str(path))
    return path


def build_tiny_modernbert_cross_encoder(path: str | Path, num_labels: int = 1, seed: int = 0, **overrides) -> Path:
    """A random-weight ``ModernBertForSequenceClassification`` (gte-reranker-modernbert-base's architecture, tiny).

    Global attention every third layer, the others a sliding window of ``local_attention`` (8: ±4
    tokens, so that windows matter in short test pairs); a byte-level BPE tokenizer with ModernBERT's
    ``[CLS] A [SEP] B [SEP]`` pairs and no token types.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import ModernBertConfig, ModernBertForSequenceClassification, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    special = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 20, trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
        mask_token="[MASK]", model_input_names=["input_ids", "attention_mask"], model_max_length=256,
    )  # fmt: skip
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(seed)
    cfg = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=256,
        global_attn_every_n_layers=3,
        global_rope_theta=160_000.0,
        local_rope_theta=10_000.0,
        local_attention=8,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=cls_id,
        sep_token_id=sep_id,
        bos_token_id=cls_id,
        eos_token_id=sep_id,
        num_labels=num_labels,
        initializer_range=0.2,
        architectures=["ModernBertForSequenceClassification"],
    )
    cfg.update(overrides)
    model = ModernBertForSequenceClassification(ModernBertConfig(**cfg)).eval()
    _randomise_biases_and_norms(model, 0.2)
    with torch.no_grad():
        model.classifier.weight *= 8.0  # scores spread over (0, 1) rather than sit near 0.5
    model.save_pretrained(str(path))
    return path


def build_tiny_gemma_reranker(path: str | Path, **overrides) -> Path:
    """A random-weight ``GemmaForCausalLM`` bge-reranker-v2-gemma (name it ``.../bge-reranker-v2-gemma-...``)
    with the tiny Gemma tokenizer and Gemma-2B's attention shape (:data:`TINY_GEMMA`)."""
    path = Path(path)
    tokenizer = build_tiny_gemma_tokenizer(path)
    return build_tiny_llm_reranker(path, "GemmaForCausalLM", tokenizer, ("Yes",), **{**TINY_GEMMA, **overrides})
