"""Benchmark workloads built from real passages, cut to exact token lengths.

W100 / W20 / W8 are one request of 100 / 20 / 8 documents whose lengths are spread evenly
from 32 to 512 tokens (W100: 34.6k prompt tokens, the reference workload); ``W100-430``
spreads them from 32 to 430 tokens instead (30.5k prompt tokens).
``docs1..docs32`` are the batch-size table (1 to 32 documents); ``long2k/8k/32k`` stress long documents.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FALLBACK_TEXT = (
    "Reranking scores every candidate passage against the query with a cross-encoder. "
    "服务器CPU使用率持续100%时，先用 top 找到进程。Dockerのメモリ制限は --memory で設定します。"
)


@dataclass(frozen=True)
class Workload:
    name: str
    query: str
    documents: list[str]
    max_length: int = 8192


def load_corpus(data_dir: str | Path | None) -> tuple[list[str], list[str]]:
    """Passages and queries of a BEIR folder (corpus.jsonl, queries.jsonl); a fallback text without one."""
    if data_dir is None:
        return [FALLBACK_TEXT] * 50, ["what does a reranker do"]
    data = Path(data_dir)
    passages = [
        json.loads(line)["text"] for line in (data / "corpus.jsonl").read_text("utf-8").split("\n") if line.strip()
    ]
    queries = [
        json.loads(line)["text"] for line in (data / "queries.jsonl").read_text("utf-8").split("\n") if line.strip()
    ]
    return passages, queries


class DocumentMaker:
    """Cuts a token stream of shuffled passages into documents of given token lengths."""

    def __init__(self, tokenizer, passages: list[str], seed: int = 0) -> None:
        order = list(passages)
        random.Random(seed).shuffle(order)
        ids = tokenizer(order, add_special_tokens=False)["input_ids"]
        self.stream = [t for doc in ids for t in doc + tokenizer(" ", add_special_tokens=False)["input_ids"]]
        self.tokenizer = tokenizer
        self.pos = 0

    def make(self, length: int) -> str:
        out: list[int] = []
        while len(out) < length:
            take = min(length - len(out), len(self.stream) - self.pos)
            out += self.stream[self.pos : self.pos + take]
            self.pos = (self.pos + take) % len(self.stream)
        return self.tokenizer.decode(out)


def spread(n: int, low: int = 32, high: int = 512) -> list[int]:
    return [int(x) for x in np.linspace(low, high, n).round()]


def build(names: list[str], tokenizer, data_dir: str | Path | None, seed: int = 0) -> list[Workload]:
    passages, queries = load_corpus(data_dir)
    maker = DocumentMaker(tokenizer, passages, seed)
    rng = random.Random(seed)
    query = queries[0]
    out = []
    for name in names:
        if match := re.fullmatch(r"W(\d+)(?:-(\d+))?", name):
            high = int(match[2] or 512)
            out.append(Workload(name, query, [maker.make(n) for n in spread(int(match[1]), high=high)]))
        elif name.startswith("docs") and name[4:].isdigit():
            n = int(name[4:])
            out.append(Workload(name, query, [maker.make(rng.randint(32, 512)) for _ in range(n)]))
        elif name.startswith("long") and name.endswith("k"):
            size = int(name[4:-1]) * 1024
            count = max(1, 16 * 1024 // size)
            out.append(Workload(name, query, [maker.make(size) for _ in range(count)], max_length=size + 512))
        else:
            raise ValueError(
                f"unknown workload {name!r}: use W100, W20, W8 (or W100-430: lengths up to 430), "
                "docs1..docs32, long2k, long8k, long32k"
            )
    return out


GROUPS = {
    "main": ["W100", "W20", "W8"],
    "sizes": ["docs1", "docs4", "docs8", "docs16", "docs32"],
    "long": ["long2k", "long8k", "long32k"],
}


def expand(spec: str) -> list[str]:
    names: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        names += GROUPS.get(part, [part] if part else [])
    return names
