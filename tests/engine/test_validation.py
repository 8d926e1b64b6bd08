"""The engine's text checks: one wording, one notion of blank (the HTTP API's OpenAPI pattern)."""

from __future__ import annotations

import re

import pytest

from rankserve.engine import ScoreRequest
from rankserve.engine.prepare import validate
from rankserve.engine.validation import NON_BLANK_PATTERN, check_texts, is_blank
from rankserve.errors import InvalidTextError


@pytest.mark.parametrize(
    ("queries", "docs", "message", "field", "index", "empty"),
    [
        ([], ["a"], "query cannot be empty", "query", None, True),
        (["q", " \u3000"], ["a"], "query cannot be empty", "query", None, True),
        ([3], ["a"], "query must be a string, got int", "query", None, False),
        (["q"], [], "documents cannot be empty", "documents", None, True),
        (["q"], "a", "documents must be a list of strings", "documents", None, False),
        (["q"], ["a", "b", "\ufeff"], "document 2 is empty", "documents", 2, True),
        (["q"], ["a", None], "document 1 must be a string, got NoneType", "documents", 1, False),
    ],
)
def test_check_texts_names_the_input_that_failed(queries, docs, message, field, index, empty):
    with pytest.raises(InvalidTextError) as info:
        check_texts(queries, docs)
    err = info.value
    assert (str(err), err.field, err.index, err.empty) == (message, field, index, empty)


def test_engine_validation_is_check_texts():
    with pytest.raises(InvalidTextError, match="^document 1 is empty$"):
        validate(ScoreRequest("q", ["a", "\u00a0\n"]))
    validate(ScoreRequest("q", ["a", "b"]))  # good input passes


@pytest.mark.parametrize("text", ["", " ", "\t\n", "\u00a0", "\ufeff", "\u2028\u3000"])
def test_blank_means_what_the_openapi_pattern_means(text):
    assert is_blank(text) and re.search(NON_BLANK_PATTERN, text) is None
    assert not is_blank(text + "x")
