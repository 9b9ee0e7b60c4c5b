"""The ``trader`` command line."""

from trader.cli.main import cli, main

__all__ = ["cli", "main"]
