"""RankServe's web UI (Gradio): mounted in the API server at ``/ui`` or run alone.

Importing this package is cheap; Gradio is imported only when a page is built, so the
server's ``create_app`` can probe for :func:`mount` without paying for it when the UI is off.
"""

from __future__ import annotations

from rankserve.ui.mount import UI_PATH, mount

__all__ = ["UI_PATH", "mount"]
