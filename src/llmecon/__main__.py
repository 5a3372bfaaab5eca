"""`python -m llmecon` (the GPU image runs it this way, with PYTHONPATH=src)."""

from llmecon.cli import main

if __name__ == "__main__":
    main()
