"""Tokenization for BM25 that works for English, Chinese, Japanese and Korean alike.

Whitespace splitting is useless for CJK text (a Chinese sentence is one "word"), and a
dictionary segmenter (jieba, MeCab) is a heavy per-language dependency. Overlapping
character bigrams are the classic language-neutral answer (Lucene's ``CJKAnalyzer`` does the
same): "服务器CPU" → "服务", "务器" + "cpu". A single CJK character between non-CJK text stays
a unigram so it can still match. Everything else is split into Unicode word runs, lowercased,
with a short English stopword list removed. No stemming: results stay identical on every
machine without an optional stemmer package.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Han (incl. extension A and compatibility), Hiragana, Katakana (+ phonetic ext.), Hangul.
_CJK = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u1100-\u11ff"
_TOKEN_RE = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")

ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)


def is_cjk(char: str) -> bool:
    """True for a character that :func:`tokenize` turns into bigrams."""
    return bool(re.fullmatch(f"[{_CJK}]", char))


def tokenize(text: str, stopwords: frozenset[str] = ENGLISH_STOPWORDS) -> list[str]:
    """Split ``text`` into BM25 terms: word runs, plus character bigrams for CJK runs."""
    text = unicodedata.normalize("NFKC", text).casefold()
    tokens: list[str] = []
    for match in _TOKEN_RE.finditer(text):
        cjk, word = match.group(1), match.group(2)
        if cjk:
            if len(cjk) == 1:
                tokens.append(cjk)
            else:
                tokens.extend(cjk[i : i + 2] for i in range(len(cjk) - 1))
        elif word not in stopwords:
            tokens.append(word)
    return tokens


def tokenize_many(texts: Iterable[str]) -> list[list[str]]:
    """Tokenize every text; kept separate so callers can swap in a parallel version later."""
    return [tokenize(t) for t in texts]
