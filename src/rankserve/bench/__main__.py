"""``python -m rankserve.bench``: the bench command alone (no server, UI or pipeline imports)."""

import typer

from rankserve.bench.cli import bench

if __name__ == "__main__":
    typer.run(bench)
