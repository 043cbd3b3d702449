"""``python -m backend collect|serve|soak``: the headless commands (``main``), the collector
loop and the soak run."""

from backend.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
