"""``python -m rankserve.server [OPTIONS]`` runs ``rankserve serve``."""

from rankserve.server.cli import main

main()
