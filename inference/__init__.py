"""Inference: the worker that answers relay requests with a fine-tuned model.

Kept import-light: engines that need torch or vLLM are imported only when chosen.
"""
