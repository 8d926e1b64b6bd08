#!/usr/bin/env bash
# HTTP load test recorded in docs/performance.md: the real server (random weights of each Qwen3-Reranker
# size, compiled) under Poisson load of 20-document requests; a separate process generates the load.
# Usage: scripts/gpu_http_bench.sh [OUTDIR] [SHARED_DIR]   (MODELS="0.6b 4b 8b" RATES=... DURATION=...
#        SERVE_ARGS="--no-cuda-graphs" ...)
set -uo pipefail
out=${1:-bench-out}
S=${2:-../shared}
mkdir -p "$out"
port=8100
for size in ${MODELS:-0.6b 4b 8b}; do
  PYTHONUNBUFFERED=1 python3 -m rankserve.bench.serve_random --config "$S/models/qwen3-reranker-$size/config.json" \
    --tokenizer "$S/qwen3-tokenizer" --port $port ${SERVE_ARGS:-} > "$out/server-$size.log" 2>&1 &
  pid=$!
  python3 - <<PY || { echo "server for $size did not start:"; tail -5 "$out/server-$size.log"; continue; }
import os, sys, time, httpx
for _ in range(300):
    try:
        os.kill($pid, 0)
    except OSError:
        sys.exit(1)  # the server process is gone
    try:
        if httpx.get("http://127.0.0.1:$port/health", timeout=2).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    time.sleep(1)
else:
    sys.exit(1)
PY
  echo "== $size"
  python3 -m rankserve.bench --http "http://127.0.0.1:$port" --tokenizer "$S/qwen3-tokenizer" \
    --data "$S/data/trec-dl19-subset" --docs 20 --rates "${RATES:-4,8,16,32,48,64,96,128}" \
    --duration "${DURATION:-8}" --concurrency 64 --json "$out/http-$size.json"
  kill -TERM $pid; wait $pid
done
