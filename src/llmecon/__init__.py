"""llmecon: measure how well real decoder-only LLMs use an accelerator, and price it."""

__version__ = "0.1.0"
