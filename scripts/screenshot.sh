#!/usr/bin/env bash
# Regenerate docs/ui-screenshot.png (the picture of the web UI in docs/ui.md): runs the browser test that
# ranks the built-in example in a real Chromium and saves the page there instead of a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
RANKSERVE_SCREENSHOT="$PWD/docs/ui-screenshot.png" PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" \
    python -m pytest -q tests/ui/test_ui_browser.py -k test_example_screenshot_and_compare "$@"
echo "wrote docs/ui-screenshot.png"
