#!/usr/bin/env bash
# The GPU benchmark recorded in docs/performance.md: random weights of the three real Qwen3-Reranker
# architectures, the real Qwen3 tokenizer, TREC DL19 passages; RankServe vs the official recipe.
# Usage: scripts/gpu_bench.sh [main|sizes|long|W100,...] [OUTDIR] [SHARED_DIR]
set -uo pipefail
what=${1:-main}
out=${2:-bench-out}
S=${3:-../shared}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
models=""
for size in ${MODELS:-0.6b 4b 8b}; do
  models="$models --random-weights $S/models/qwen3-reranker-$size/config.json"
done
PYTHONUNBUFFERED=1 python3 -m rankserve.bench $models --tokenizer "$S/qwen3-tokenizer" \
  --data "$S/data/trec-dl19-subset" --baseline --workloads "$what" ${BENCH_ARGS:-} \
  --json "$out/bench-${what//,/-}.json" --png "$out/bench-${what//,/-}.png"
