# RankServe container images: `rankserve serve` (API + web UI at /ui) as a non-root user.
#
# GPU image (CUDA base, PyTorch for CUDA from PyPI):
#   docker build -t rankserve:gpu .
#   docker run --gpus all -p 8000:8000 -v rankserve-cache:/data rankserve:gpu --model Qwen/Qwen3-Reranker-0.6B
# CPU image (same Dockerfile, another base and PyTorch's CPU wheels):
#   docker build -t rankserve:cpu --build-arg BASE_IMAGE=python:3.11-slim-bookworm \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu .
#
# Every `rankserve serve` option is also an environment variable (RANKSERVE_MODEL, RANKSERVE_API_KEY,
# RANKSERVE_MAX_LENGTH, ...). Models download to the /data volume (HF_HOME=/data/huggingface).
# Needs BuildKit (Docker 23+ by default; DOCKER_BUILDKIT=1 on older Docker).
#
# Builds behind a private package mirror may pass a pip configuration and its CA bundle as build
# secrets (never stored in the image), and put local wheels in docker/wheels/:
#   --secret id=pipconf,src=pip.conf --secret id=pip-ca,src=ca.pem   (see scripts/docker-smoke.sh)

ARG BASE_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04

FROM ${BASE_IMAGE} AS base
# Python 3.10+ with venv: present in python:* images, installed from the distribution elsewhere.
RUN if ! python3 -c "import sys, venv, ensurepip; assert sys.version_info >= (3, 10)" 2>/dev/null; then \
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3 python3-venv ca-certificates && rm -rf /var/lib/apt/lists/*; \
    fi

FROM base AS builder
# torch spec and index: the GPU default is PyPI's torch (CUDA 12 wheels); CPU builds point
# TORCH_INDEX_URL at https://download.pytorch.org/whl/cpu (or pin TORCH_SPEC to a local wheel).
ARG TORCH_SPEC=torch
ARG TORCH_INDEX_URL=
ARG EXTRAS=ui
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/rankserve
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN --mount=type=secret,id=pipconf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-ca,target=/run/secrets/pip-ca \
    --mount=type=bind,source=docker/wheels,target=/wheels \
    /opt/rankserve/bin/pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC" \
    && /opt/rankserve/bin/pip install ".[${EXTRAS}]" \
    && find /opt/rankserve -name __pycache__ -prune -exec rm -rf {} +

FROM base AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="RankServe" \
      org.opencontainers.image.description="Self-hosted reranking service (Qwen3-Reranker, cross-encoders): HTTP API and web UI" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
RUN (getent passwd 1000 >/dev/null && userdel -r "$(getent passwd 1000 | cut -d: -f1)" || true) \
    && useradd --uid 1000 --create-home --shell /usr/sbin/nologin rankserve \
    && mkdir -p /data && chown rankserve:rankserve /data
COPY --from=builder /opt/rankserve /opt/rankserve
ENV PATH=/opt/rankserve/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/data/huggingface \
    GRADIO_ANALYTICS_ENABLED=False \
    RANKSERVE_HOST=0.0.0.0 \
    RANKSERVE_PORT=8000 \
    RANKSERVE_DOCKER_LABEL=rankserve-${VERSION}
VOLUME ["/data"]
EXPOSE 8000
USER rankserve
WORKDIR /home/rankserve
# /health is 200 once the model is loaded; a large model's first download can take minutes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('RANKSERVE_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["rankserve", "serve"]
