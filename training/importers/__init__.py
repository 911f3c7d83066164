"""Importers: one module per export format (WeChat, QQ, Telegram, Discord, WhatsApp, ShareGPT, articles,
Doppel's own JSONL), the shared reading helpers (``base``), and ``detect``, which tells formats apart and
runs the right parser. Every parser yields ``messages.Message``."""
