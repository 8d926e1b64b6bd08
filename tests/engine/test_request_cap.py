"""A request's own token cap (``ScoreRequest.max_length``): every pair fits it, within the engine's."""

from __future__ import annotations

import pytest

from rankserve import Reranker
from rankserve.engine.types import ScoreRequest
from rankserve.errors import InvalidInputError

LONG = "CPU usage stays at 100 percent because of a busy loop. " * 40


@pytest.mark.parametrize("fixture", ["tiny_qwen_dir", "tiny_bert_dir"])
def test_pairs_fit_the_request_cap(fixture, request):
    rr = Reranker.from_pretrained(str(request.getfixturevalue(fixture)), device="cpu", max_length=512)
    base = ScoreRequest(query="why is the cpu busy", documents=[LONG, "short"])
    full = rr.prepare(base)
    assert max(p.num_tokens for p in full.pairs) > 200
    for truncation in ("head", "head_tail", "chunks"):
        capped = rr.prepare(ScoreRequest(base.query, base.documents, truncation=truncation, max_length=200))
        assert max(p.num_tokens for p in capped.pairs) <= 200
        if truncation == "chunks":  # every window scored: nothing cut, several windows
            assert len({p.window for p in capped.pairs if p.doc_index == 0}) > 1
        else:
            assert capped.truncated[0] and not capped.truncated[1]
    # a cap above the engine's max_length changes nothing
    assert rr.prepare(ScoreRequest(base.query, base.documents, max_length=10_000)).num_tokens == full.num_tokens


def test_cap_below_the_prompt_leaves_documents_one_token(tiny_reranker):
    prepared = tiny_reranker.prepare(ScoreRequest("why is the cpu busy", [LONG, "short one"], max_length=3))
    full = tiny_reranker.prepare(ScoreRequest("why is the cpu busy", [LONG, "short one"]))
    for capped, whole in zip(prepared.pairs, full.pairs, strict=True):
        assert capped.prefix == whole.prefix  # the prompt and the query are never cut by the cap
        assert len(capped.tokens) == len(tiny_reranker.builder.suffix_ids) + 1
    assert prepared.truncated == [True, True]


def test_invalid_cap_is_invalid_input(tiny_reranker):
    for cap in (0, -1, True, 2.5):
        with pytest.raises(InvalidInputError, match="max_length must be a positive integer"):
            tiny_reranker.prepare(ScoreRequest("q", ["doc"], max_length=cap))
