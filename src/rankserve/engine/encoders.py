"""Packed, padding-free forward passes for encoder cross-encoders, and which encoders have one.

The generic path pads every pair of a micro-batch to the longest one and runs the transformers
``*ForSequenceClassification`` forward; with documents of very different lengths most of that
work is padding. The packed runners (:mod:`rankserve.engine.xlmr`, :mod:`rankserve.engine.modernbert`)
run the same maths over the same weight tensors with the pairs' tokens concatenated: attention
reads only the keys of a token's own pair (both ways, encoders are bidirectional) and the head
reads only what the checkpoint's config pools (the first token, or the mean of a pair's tokens).
There is no prefix reuse: every token of an encoder sees the document, so nothing is shared.

An encoder whose ``model_type`` has no runner here, or a variant a runner does not cover, stays on
the generic forward (:func:`packed_runner` returns ``None`` and logs why).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rankserve.engine.layout import SeqLayout
from rankserve.engine.packing import upload
from rankserve.engine.types import Pair

log = logging.getLogger(__name__)


@dataclass
class EncoderBatch:
    """Flat tensors for one packed encoder pass: every pair's tokens, one after the other."""

    ids: torch.Tensor  # [T] token ids
    types: torch.Tensor  # [T] token type ids (zeros where the tokenizer gives none)
    pos: torch.Tensor  # [T] position ids, as the model numbers them
    seq: torch.Tensor  # [T] which pair each token belongs to
    lengths: torch.Tensor  # [N] tokens of each pair
    first: torch.Tensor  # [N] index of each pair's first token (its CLS / <s>)
    layout: SeqLayout  # every pair attends to itself (queries and keys alike)
    first_layout: SeqLayout  # each pair's first token as its only query, reading all the pair's keys
    buffers: tuple[torch.Tensor, ...] = ()  # the device arrays all of the above are views of


def pack_pairs(pairs: Sequence[Pair], device: torch.device, pad_id: int | None = None) -> EncoderBatch:
    """Concatenate the pairs' tokens and describe where each pair lives, then copy it all to the device.

    ``pad_id``: RoBERTa-style positions (``padding_idx + 1`` onwards, counting only tokens that are not
    the padding id, as transformers' ``create_position_ids_from_input_ids`` numbers them); ``None``:
    positions ``0 .. len - 1`` of each pair.
    """
    n = len(pairs)
    lens = np.asarray([len(p.prefix) + len(p.tokens) for p in pairs], dtype=np.int64)
    ids = np.concatenate([np.asarray([*p.prefix, *p.tokens], dtype=np.int64) for p in pairs])
    types = np.concatenate(
        [
            np.asarray(p.token_type_ids, dtype=np.int64)
            if p.token_type_ids is not None and not p.prefix
            else np.zeros(len(p.prefix) + len(p.tokens), dtype=np.int64)
            for p in pairs
        ]
    )
    cu = np.concatenate([[0], np.cumsum(lens)])
    starts = cu[:-1]
    seq = np.repeat(np.arange(n, dtype=np.int64), lens)
    if pad_id is None:
        pos = np.arange(len(ids), dtype=np.int64) - starts[seq]
    else:
        real = (ids != pad_id).astype(np.int64)
        counted = np.cumsum(real)
        before = (counted - real)[starts]  # real tokens of the earlier pairs
        pos = (counted - before[seq]) * real + pad_id
    flat64, (ids_t, types_t, pos_t, seq_t, lens_t, first_t) = upload([ids, types, pos, seq, lens, starts], device)
    flat32, (cu_t, cu_first) = upload([cu.astype(np.int32), np.arange(n + 1, dtype=np.int32)], device, torch.int32)
    longest = int(lens.max()) if n else 0
    return EncoderBatch(
        ids=ids_t,
        types=types_t,
        pos=pos_t,
        seq=seq_t,
        lengths=lens_t,
        first=first_t,
        layout=SeqLayout(cu_t, cu_t, longest, longest),
        first_layout=SeqLayout(cu_first, cu_t, 1, longest),
        buffers=(flat64, flat32),
    )


def classifier_score(logits: torch.Tensor) -> torch.Tensor:
    """The raw score of ``[N, labels]`` classifier logits: the logit for one label; with several, the last
    class against the rest (its sigmoid is ``softmax(logits)[-1]``)."""
    logits = logits.float()
    if logits.shape[-1] == 1:
        return logits[:, 0]
    return logits[:, -1] - torch.logsumexp(logits[:, :-1], dim=-1)


def packed_runner(model: torch.nn.Module) -> torch.nn.Module | None:
    """The packed runner for this ``*ForSequenceClassification`` model, or ``None`` (the generic forward).

    Chosen by ``config.model_type``; a runner refuses (``ValueError``) a variant it does not compute
    exactly as transformers does, and the model then keeps the generic forward.
    """
    model_type = getattr(model.config, "model_type", "")
    try:
        if model_type == "xlm-roberta":
            from rankserve.engine.xlmr import XLMRobertaScorer

            return XLMRobertaScorer(model)
        if model_type == "modernbert":
            from rankserve.engine.modernbert import ModernBertScorer

            return ModernBertScorer(model)
    except ValueError as exc:
        log.info("%s runs on the padded transformers forward: %s", model_type, exc)
    return None
