#!/usr/bin/env bash
# Build the CPU image, start it with a tiny random-weight model, and check /health, /rerank,
# /tei/rerank and /ui from outside the container, plus the image's HEALTHCHECK and its non-root user.
#
# Not part of CI: a cold build installs PyTorch and Gradio (several minutes, ~2 GB). Run it by hand:
#   scripts/docker-smoke.sh
# Settings (environment):
#   DOCKER           docker CLI with BuildKit (default: docker)
#   IMAGE            tag to build (default: rankserve:cpu-smoke)
#   BASE_IMAGE       base image (default: python:3.11-slim-bookworm)
#   TORCH_SPEC       torch requirement (default: torch)
#   TORCH_INDEX_URL  where torch comes from (default: PyTorch's CPU wheels; empty: pip's own index)
#   PIP_CONF, PIP_CA a pip configuration and CA bundle for a private mirror, passed as build secrets
#                    (the configuration may say `cert = /run/secrets/pip-ca`, `find-links = /wheels`)
#   WHEELS           wheels to offer the build (copied to docker/wheels/, ignored by git)
#   PORT             host port for the test container (default: 18000); it runs with --network host
#                    so that hosts without a Docker bridge can run it too
#   SKIP_BUILD=1     reuse an already built IMAGE
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-docker}
IMAGE=${IMAGE:-rankserve:cpu-smoke}
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim-bookworm}
TORCH_SPEC=${TORCH_SPEC:-torch}
TORCH_INDEX_URL=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}
PORT=${PORT:-18000}
NAME=rankserve-smoke-$$
VOLUME=rankserve-smoke-$$
URL=http://127.0.0.1:$PORT

step() { printf '\n== %s\n' "$*"; }
cleanup() {
    "$DOCKER" rm -f "$NAME" >/dev/null 2>&1 || true
    "$DOCKER" volume rm -f "$VOLUME" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [[ -z "${SKIP_BUILD:-}" ]]; then
    step "build $IMAGE from $BASE_IMAGE"
    args=(--network host -t "$IMAGE" --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "TORCH_SPEC=$TORCH_SPEC"
          --build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL" --build-arg "REVISION=$(git rev-parse --short HEAD)")
    [[ -n "${PIP_CONF:-}" ]] && args+=(--secret "id=pipconf,src=$PIP_CONF")
    [[ -n "${PIP_CA:-}" ]] && args+=(--secret "id=pip-ca,src=$PIP_CA")
    if [[ -n "${WHEELS:-}" ]]; then cp -u "$WHEELS"/*.whl docker/wheels/; fi
    started=$(date +%s)
    DOCKER_BUILDKIT=1 "$DOCKER" build "${args[@]}" .
    echo "built in $(( $(date +%s) - started )) s"
fi
"$DOCKER" image inspect "$IMAGE" --format 'image size: {{.Size}} bytes; user: {{.Config.User}}; entrypoint: {{.Config.Entrypoint}}'

step "tiny model into the cache volume (rankserve make-tiny-model, inside the image)"
"$DOCKER" volume create "$VOLUME" >/dev/null
"$DOCKER" run --rm --network host -v "$VOLUME:/data" --entrypoint rankserve "$IMAGE" make-tiny-model /data/tiny

step "start: docker run ... $IMAGE --model /data/tiny (options from the environment)"
"$DOCKER" run -d --name "$NAME" --network host -v "$VOLUME:/data" \
    -e RANKSERVE_PORT="$PORT" -e RANKSERVE_DEVICE=cpu -e RANKSERVE_LOG_FORMAT=json \
    "$IMAGE" --model /data/tiny >/dev/null
for _ in $(seq 1 120); do
    curl -fsS "$URL/health" >/dev/null 2>&1 && break
    sleep 1
done
echo "GET /health -> $(curl -sS "$URL/health")"

step "POST /rerank"
curl -fsS "$URL/rerank" -H 'Content-Type: application/json' \
    -d '{"query": "capital of France", "texts": ["Paris is the capital of France.", "Cats sleep a lot."]}'
echo
step "POST /tei/rerank (Text Embeddings Inference format)"
curl -fsS "$URL/tei/rerank" -H 'Content-Type: application/json' \
    -d '{"query": "capital of France", "texts": ["Paris is the capital of France.", "Cats sleep a lot."], "return_text": true}'
echo
step "GET /ui/"
code=$(curl -sS -o /tmp/rankserve-smoke-ui.html -w '%{http_code}' "$URL/ui/")
echo "status $code, $(wc -c </tmp/rankserve-smoke-ui.html) bytes, gradio page: $(grep -c -i gradio /tmp/rankserve-smoke-ui.html) lines mention gradio"
[[ "$code" == 200 ]]

step "container user and HEALTHCHECK"
echo "uid inside: $("$DOCKER" exec "$NAME" id -u), model cache (HF_HOME): $("$DOCKER" exec "$NAME" sh -c 'echo $HF_HOME')"
for _ in $(seq 1 60); do
    status=$("$DOCKER" inspect "$NAME" --format '{{.State.Health.Status}}')
    [[ "$status" == healthy ]] && break
    sleep 2
done
echo "health status: $status"
[[ "$status" == healthy ]]

step "last access-log line (JSON)"
"$DOCKER" logs "$NAME" 2>&1 | grep rankserve.access | tail -1
echo
echo "smoke test passed"
