#!/usr/bin/env bash
# Install everything RankServe's tests need on a fresh machine, then run them.
# This is the README's test command; .ci/run calls it as is.
set -euo pipefail
cd "$(dirname "$0")/.."

# 1. PyTorch first: here `torch==2.13.0` is a local CPU build (any other spec pulls CUDA packages).
python3 -m pip install -q torch==2.13.0
# 2. RankServe with its test extras.
python3 -m pip install -q -e ".[dev]"
# 3. A real browser for the web-UI tests (Debian's chromium; no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null
fi
# 4. The documentation site, warnings as errors (broken links and anchors fail), built outside the checkout.
site_dir="$(mktemp -d)"
NO_MKDOCS_2_WARNING=1 python3 -m mkdocs build --strict --quiet --site-dir "$site_dir"
rm -rf "$site_dir"
# 5. The tests.
python3 -m pytest -q "$@"
