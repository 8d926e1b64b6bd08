"""Where the Chromium for the browser tests is: ``$RANKSERVE_CHROMIUM``, else the system package."""

from __future__ import annotations

import os
import shutil

CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")


def find_chromium() -> str | None:
    """The path of a Chromium executable, or ``None`` when this machine has none (no download is tried)."""
    explicit = os.environ.get("RANKSERVE_CHROMIUM")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None
