"""Bots: platform adapters that relay chat messages to workers and post replies. Never loads a model."""
