"""`digitnet serve`: a draw-a-digit page for a saved network (see serve.py)."""


def add_commands(sub):
    """Add `serve` to the `digitnet` subparsers."""
