"""``python -m rankserve ...``: the same command line as ``rankserve``."""

from rankserve.cli import main

if __name__ == "__main__":
    main()
