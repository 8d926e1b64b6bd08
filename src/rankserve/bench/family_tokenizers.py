"""Tokenizers for random-weight benchmarks of families whose real tokenizer is not at hand.

With random weights a tokenizer decides only how many tokens a text makes and which ids they are;
what must be right is the family's *template*: its special tokens, their ids and where they go.
The real Qwen3 tokenizer serves the Qwen2 and Qwen3 families as is (Qwen2 and Qwen2.5 use the
same byte-level BPE and the same ChatML ids). For the others a tokenizer is trained here, with the
``tokenizers`` library, on the benchmark's own passages (TREC DL19), with the family's special
tokens at the family's ids and a vocabulary no larger than the config's:

- Gemma (``bge-reranker-v2-gemma``): SentencePiece-style BPE (``▁`` for spaces, byte fallback),
  ``<pad>`` 0, ``<eos>`` 1, ``<bos>`` 2, ``<unk>`` 3 as in Gemma's tokenizer; "Yes" one token.
- XLM-R (``bge-reranker-v2-m3``): SentencePiece-style Unigram, ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
  ``<unk>`` 3; pairs ``<s> q </s></s> d </s>``.
- ModernBERT (``gte-reranker-modernbert-base``): byte-level BPE with ``[CLS] q [SEP] d [SEP]``
  pairs. ModernBERT's own ids ([CLS] 50281...) sit above the trained vocabulary, so the special
  tokens come first here; only their roles matter to a random-weight model.

Token *counts* of a text differ from the real tokenizers' (32k trained pieces, not 256k/250k/50k),
but the workloads cut documents to exact lengths in the tokenizer at hand, so W100 is 100 documents
of 32..512 tokens for every family.
"""

from __future__ import annotations

from collections.abc import Iterable

from rankserve.bench.workloads import load_corpus
from rankserve.engine.templates import CTXL_HEAD, GEMMA_PROMPT, MXBAI_TASK

TRAINED_VOCAB = 32000
"""Trained vocabulary size (below every config's: Gemma 256000, XLM-R 250002, ModernBERT 50368)."""

_EXTRA_TEXT = [GEMMA_PROMPT, MXBAI_TASK, CTXL_HEAD, "A: B: Yes No yes no"]


def _corpus(data_dir) -> list[str]:
    passages, queries = load_corpus(data_dir)
    return passages + queries + _EXTRA_TEXT * 50


def gemma_tokenizer(data_dir, vocab_size: int = TRAINED_VOCAB):
    """A Gemma-like tokenizer: BPE over ``▁``-marked words, Gemma's special ids, "Yes" one token."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>", *byte_tokens], show_progress=False
    )
    tok.train_from_iterator(_corpus(data_dir), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        padding_side="left", model_input_names=["input_ids", "attention_mask"],
    )  # fmt: skip
    _check_single(fast, "Yes")
    assert [fast.pad_token_id, fast.eos_token_id, fast.bos_token_id] == [0, 1, 2]
    return fast


def xlmr_tokenizer(data_dir, vocab_size: int = TRAINED_VOCAB):
    """An XLM-R-like tokenizer: Unigram over ``▁``-prefixed words, XLM-R's special ids and pair layout."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(_corpus(data_dir), trainer)
    ids = {t: tok.token_to_id(t) for t in specials}
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>", model_max_length=8192,
        model_input_names=["input_ids", "attention_mask"],
    )  # fmt: skip
    assert [ids["<s>"], ids["<pad>"], ids["</s>"], ids["<unk>"]] == [0, 1, 2, 3]
    return fast


def modernbert_tokenizer(data_dir, vocab_size: int = TRAINED_VOCAB):
    """A ModernBERT-like tokenizer: byte-level BPE, ``[CLS] q [SEP] d [SEP]`` pairs, no token types."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(data_dir), trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
        mask_token="[MASK]", model_max_length=8192, model_input_names=["input_ids", "attention_mask"],
    )  # fmt: skip


def _check_single(tokenizer, word: str) -> None:
    if len(tokenizer(word, add_special_tokens=False)["input_ids"]) != 1:
        raise RuntimeError(f"the trained tokenizer did not learn {word!r} as one token")


TRAINERS = {"gemma": gemma_tokenizer, "xlm-roberta": xlmr_tokenizer, "modernbert": modernbert_tokenizer}


def special_ids(tokenizer) -> Iterable[int]:
    """Every special id of a tokenizer (for the vocabulary check against a config)."""
    return [i for i in tokenizer.all_special_ids if i is not None]
