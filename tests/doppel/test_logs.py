"""Secrets in logs (doppel/logs.py): a handler's mask, and the process-wide mask that adapters
install for their tokens, which covers every logger and tracebacks too."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from doppel.logs import SecretMask, guard_secret, secrets_from_env, setup_logging


def test_secret_mask_hides_tokens_in_log_records(caplog):
    logger = logging.getLogger("test.secrets")
    caplog.handler.addFilter(SecretMask(["tok-ABCDEFG-123"]))
    logger.warning("connecting with %s now", "tok-ABCDEFG-123")
    assert "tok-ABCDEFG-123" not in caplog.text and "connecting with *** now" in caplog.text


def test_log_records_mask_a_guarded_secret(caplog):
    guard_secret("tok-abcdef-123456")
    logger = logging.getLogger("some.library")
    logger.warning("GET https://api/bot%s/getMe", "tok-abcdef-123456")
    try:
        raise ValueError("bad url .../bottok-abcdef-123456/x")
    except ValueError:
        logger.exception("failed")
    assert "tok-abcdef-123456" not in caplog.text
    assert "bot***/getMe" in caplog.text and "bot***/x" in caplog.text


def test_setup_logging_guards_the_environment_secrets_in_every_logger(caplog):
    env = {"DOPPEL_TELEGRAM_TOKEN": "123456:telegram-secret-token", "DOPPEL_REDIS_URL": "redis://:pw-9876543@host:6379"}
    assert set(secrets_from_env(env)) == set(env.values())
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging(verbose=1, env=env)
        root.addHandler(caplog.handler)
        logging.getLogger("telegram.ext").warning("POST https://api/bot%s/getUpdates", env["DOPPEL_TELEGRAM_TOKEN"])
        logging.getLogger("doppel.x").warning("redis at %s", env["DOPPEL_REDIS_URL"])
    finally:
        root.handlers[:], root.level = handlers, level
    assert "telegram-secret-token" not in caplog.text and "pw-9876543" not in caplog.text
    assert "bot***/getUpdates" in caplog.text and "redis at ***" in caplog.text


def test_short_values_are_not_masked():
    # A 5-character "secret" would turn ordinary words into *** everywhere.
    assert SecretMask(["abcde"]).mask("abcde fghij") == "abcde fghij"
    assert SecretMask(["abcdef"]).mask("abcdef fghij") == "*** fghij"


ROOT = Path(__file__).resolve().parents[2]
SECRET = "tok-uncaught-7f3a9c"
UNCAUGHT = {
    "main thread": f"raise RuntimeError('GET https://api/bot{SECRET}/getMe failed')",
    "chained": f"""
try:
    raise KeyError('{SECRET}')
except KeyError:
    raise ValueError('while handling')
""",
    "thread": f"""
import threading
thread = threading.Thread(target=lambda: 1 / 0 if False else exec("raise OSError('url bot{SECRET}')"))
thread.start(); thread.join()
print('main goes on')
""",
    "unraisable": f"""
class Leaky:
    def __del__(self):
        raise RuntimeError('closing bot{SECRET}')
Leaky()
""",
    "asyncio task": f"""
import asyncio, gc
async def main():
    async def boom():
        raise RuntimeError('bot{SECRET}')
    asyncio.get_running_loop().create_task(boom())
    await asyncio.sleep(0.05)
    gc.collect()
asyncio.run(main())
""",
}


@pytest.mark.parametrize("where", sorted(UNCAUGHT))
def test_an_uncaught_exception_never_prints_a_guarded_secret(where):
    """sys.excepthook, threading.excepthook, sys.unraisablehook and asyncio's handler all print
    tracebacks straight to stderr, past the log record factory: they go through the mask too."""
    code = f"from doppel.logs import guard_secret\nguard_secret({SECRET!r})\n{UNCAUGHT[where]}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert SECRET not in result.stderr + result.stdout, result.stderr
    assert "Traceback" in result.stderr and "***" in result.stderr, result.stderr
    if where == "main thread":
        assert result.returncode == 1 and "RuntimeError: GET https://api/bot***/getMe failed" in result.stderr
    if where == "thread":
        assert "main goes on" in result.stdout and "Exception in thread" in result.stderr
