"""Doppel's shared core: the CLI, settings, the relay contract and the embedded Redis."""

__version__ = "0.1.0"
