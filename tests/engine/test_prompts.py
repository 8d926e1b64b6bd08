"""The prompt matches the model card, and splitting it per request gives the official token ids."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from rankserve import prompts
from tests.support.official import PREFIX, SUFFIX, format_instruction
from tests.support.texts import DOCS, QUERIES


def test_prompt_strings_are_the_model_cards():
    assert prompts.SYSTEM_PREFIX == PREFIX
    assert prompts.SUFFIX == SUFFIX
    assert prompts.format_body(None, "q", "d") == format_instruction(None, "q", "d")
    assert prompts.format_body("judge by law", "q", "d") == format_instruction("judge by law", "q", "d")


@pytest.fixture(
    params=["tiny", "real"],
)
def tokenizer(request, tiny_qwen_dir):
    if request.param == "tiny":
        return AutoTokenizer.from_pretrained(str(tiny_qwen_dir))
    shared = request.getfixturevalue("shared_dir") / "qwen3-tokenizer"
    if not shared.is_dir():
        pytest.skip("../shared/qwen3-tokenizer is not present")
    return AutoTokenizer.from_pretrained(str(shared))


@pytest.mark.parametrize("instruction", [None, "Judge by legal compliance: 合规性优先"])
def test_header_plus_document_equals_whole_body(tokenizer, instruction):
    """Tokenizing header and ' ' + document apart must equal tokenizing the body at once."""

    def enc(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    for query in QUERIES + ["query ending in space ", "query ending in newline\n", "x?"]:
        header = enc(prompts.format_header(instruction, query))
        for doc in DOCS:
            whole = enc(prompts.format_body(instruction, query, doc))
            assert header + enc(prompts.document_part(doc)) == whole, (query, doc)
