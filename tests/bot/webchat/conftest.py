"""Fixtures of the web chat tests: ``run_web`` starts the web chat the way ``doppel demo`` does.

The tests here share ``webchat_pages.py`` (an open page); pytest's importlib mode puts only
``tests/`` on the path, so this folder is added for them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from bot_helpers import FAST_BOT
from web_helpers import serving_web

if str(Path(__file__).parent) not in sys.path:
    sys.path.append(str(Path(__file__).parent))


@pytest.fixture
def run_web(make_settings, redis_url):
    """Start the web chat on a free port (``serve_web``, what ``doppel demo`` runs); yields the platform."""

    def start(*, web=None, bot=None, **core_options):
        settings = make_settings(bot={**FAST_BOT, **(bot or {})}, web={"port": 0, "friends": False, **(web or {})})
        return serving_web(settings, redis_url, **core_options)

    return start
