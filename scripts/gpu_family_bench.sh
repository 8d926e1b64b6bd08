#!/usr/bin/env bash
# The per-family benchmark recorded in docs/performance.md ("Per-family benchmark"): every reranker family
# RankServe serves, random weights of its real architecture, RankServe (as `serve` runs it: bf16, compiled)
# against the family's official code in the same process, W100 and W20, scores compared. One GPU, no network,
# no web framework needed. Prints one summary table last; exit code 1 if a family failed.
# Usage: scripts/gpu_family_bench.sh [OUTDIR] [SHARED_DIR]    (FAMILIES=a,b to pick; BENCH_ARGS=... to add)
set -uo pipefail
out=${1:-bench-out}
S=${2:-../shared}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true python3 -m rankserve.bench.families \
  --families "${FAMILIES:-all}" --qwen-tokenizer "$S/qwen3-tokenizer" --data "$S/data/trec-dl19-subset" \
  --workloads W100,W20 ${BENCH_ARGS:-} --json "$out/families.json" 2>&1 | tee "$out/families.log"
exit "${PIPESTATUS[0]}"
