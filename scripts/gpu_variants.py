"""Forward-pass time of engine variants on one packed W100 batch (GPU): eager, fused rms_norm, compile.

Usage (GPU): python scripts/gpu_variants.py SHARED_DIR SIZE
"""

import sys
import time

import torch
import torch._dynamo.utils as dynamo_utils
import torch.nn.functional as F

from rankserve.bench.engine_bench import load_causal_lm
from rankserve.bench.workloads import build
from rankserve.engine import Reranker, ScoreRequest, qwen3
from rankserve.engine.packing import pack, plan_batches

shared, size = sys.argv[1], sys.argv[2]
dev = torch.device("cuda")
model, tok, name = load_causal_lm(
    None, f"{shared}/models/qwen3-reranker-{size}/config.json", f"{shared}/qwen3-tokenizer", dev, torch.bfloat16
)
w = build(["W100"], tok, f"{shared}/data/trec-dl19-subset")[0]
eager_norm = qwen3.rms_norm


def fused_norm(x, weight, eps):
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def run(label, reranker):
    prepared = reranker.prepare(ScoreRequest(w.query, w.documents, truncation="head"))
    packed = [pack(b, dev, True) for b in plan_batches(prepared.pairs, reranker.max_batch_tokens)]
    for _ in range(3):
        out = torch.cat([reranker.scorer(p) for p in packed])
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(5):
        out = torch.cat([reranker.scorer(p) for p in packed])
    torch.cuda.synchronize()
    ms = (time.perf_counter() - t) / 5 * 1000
    print(f"{name} {label}: forward {ms:.1f} ms", flush=True)
    return out.float()


base = run("eager", Reranker.from_model(model, tok, name))
qwen3.rms_norm = fused_norm
fused = run("eager+F.rms_norm", Reranker.from_model(model, tok, name))
print("  max |logit diff| fused norm vs eager:", float((fused - base).abs().max()))
qwen3.rms_norm = eager_norm
comp = run("compile", Reranker.from_model(model, tok, name, compile=True))
print("  dynamo:", dict(dynamo_utils.counters["stats"]), dict(dynamo_utils.counters["frames"]))
print("  max |logit diff| compile vs eager:", float((comp - base).abs().max()))
rr = Reranker.from_model(model, tok, name, compile=True)
prepared = rr.prepare(ScoreRequest(w.query, w.documents, truncation="head"))
packed = [pack(b, dev, True) for b in plan_batches(prepared.pairs, rr.max_batch_tokens)]
for p in packed:
    rr.scorer(p)
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
    for p in packed:
        rr.scorer(p)
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=10, max_name_column_width=50))
