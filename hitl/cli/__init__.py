"""The `hitl` command: local on the database, or remote on a `hitl serve` (`--url`)."""

from hitl.cli.main import main

__all__ = ["main"]
