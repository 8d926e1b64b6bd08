"""HTTP routes, grouped by dialect; each module exposes ``router``."""
