"""The per-family benchmark end to end on the CPU (``--smoke``: tiny shapes of the real architectures).

Timings on two shared CPU cores mean nothing; these tests check that each family is built from its
config, recognised by RankServe under its checkpoint's name, timed against its official code in the
same run, and that the two score the same (fp32 here), and that the trained tokenizers carry the
family's special tokens where its template needs them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rankserve.bench import families as fb
from rankserve.engine import families
from tests.support.paths import SHARED

DL19 = SHARED / "data" / "trec-dl19-subset"
DATA = DL19 if DL19.is_dir() else None


def test_every_config_has_a_bench_and_is_recognised_under_its_checkpoint_name():
    assert sorted(p.stem for p in fb.CONFIGS.glob("*.json")) == sorted(fb.BY_KEY)
    expected = {"mxbai-rerank-base-v2": "mxbai-rerank-base-v2", "mxbai-rerank-large-v2": "mxbai-rerank-v2",
                "bge-reranker-v2-gemma": "bge-reranker-v2-gemma", "zerank-2": "zerank-2"}  # fmt: skip
    for spec in fb.BENCHES:
        config = fb.load_config(spec.key)
        family = families.resolve(config, spec.checkpoint)  # no error: RankServe serves every benched family
        if spec.key.startswith("ctxl-"):
            assert family.name == "ctxl-rerank-v2"
        elif spec.key in expected:
            assert family.name == expected[spec.key]
        tiny = fb.load_config(spec.key, smoke=True)
        assert tiny.hidden_size == 64 and tiny.vocab_size == config.vocab_size
    big = fb.load_config("zerank-2")
    assert (big.hidden_size, big.num_hidden_layers, big.head_dim, big.tie_word_embeddings) == (2560, 36, 128, True)


def test_trained_tokenizers_put_the_family_special_tokens_where_its_template_reads_them():
    from rankserve.bench.family_tokenizers import gemma_tokenizer, modernbert_tokenizer, xlmr_tokenizer

    gemma = gemma_tokenizer(DATA)
    assert (gemma.pad_token_id, gemma.eos_token_id, gemma.bos_token_id) == (0, 1, 2)
    assert len(gemma("Yes", add_special_tokens=False)["input_ids"]) == 1
    xlmr = xlmr_tokenizer(DATA)
    ids = xlmr("what is a reranker", "a model that scores pairs")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and ids.count(2) == 3 and xlmr.pad_token_id == 1  # <s> q </s></s> d </s>
    assert "token_type_ids" not in xlmr("q", "d")
    mbert = modernbert_tokenizer(DATA)
    ids = mbert("what is a reranker", "a model that scores pairs")["input_ids"]
    assert ids[0] == mbert.cls_token_id and ids.count(mbert.sep_token_id) == 2 and ids[-1] == mbert.sep_token_id
    for tok in (gemma, xlmr, mbert):
        assert len(tok) <= 32000


@pytest.mark.slow
def test_smoke_run_times_ours_against_the_official_code_and_scores_agree(shared_dir, tmp_path):
    qwen = shared_dir / "qwen3-tokenizer"
    if not qwen.is_dir():
        pytest.skip("../shared/qwen3-tokenizer is not present")
    out = tmp_path / "families.json"
    chosen = ["mxbai-rerank-base-v2", "bge-reranker-v2-gemma", "bge-reranker-v2-m3"]
    proc = subprocess.run(
        [sys.executable, "-m", "rankserve.bench.families", "--smoke", "--families", ",".join(chosen),
         "--qwen-tokenizer", str(qwen), *(["--data", str(DATA)] if DATA else []), "--device", "cpu",
         "--repeat", "1", "--warmup", "0", "--json", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["meta"]["smoke"] is True and result["meta"]["dtype"] == "float32"
    rows = {(r["family"], r["workload"], r["impl"]): r for r in result["rows"]}
    for family in chosen:
        for workload in ("W4-64", "W3-48"):
            ours, theirs = rows[(family, workload, "rankserve")], rows[(family, workload, "recipe")]
            assert ours["tokens"] == theirs["tokens"] > 0  # the same prompts, counted the same way
            assert ours["p50_ms"] > 0 and theirs["p50_ms"] > 0 and ours["speedup"] > 0
            assert ours["spearman"] > 0.99 and ours["max_abs"] <= 1e-4 * max(1.0, ours["spread"]), ours
            assert ours["spread"] > 0  # the documents do score differently
            assert ours["runner"] and ours["params"] > 0
    last = proc.stdout[proc.stdout.rindex("per-family bench") :]
    assert "official p50 ms" in last and all(f in last for f in chosen)


def test_an_unknown_family_is_refused_by_name():
    proc = subprocess.run(
        [sys.executable, "-m", "rankserve.bench.families", "--families", "nope", "--smoke"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown families ['nope']" in proc.stdout
