"""Secrets in logs (doppel/logs.py): a handler's mask, and the process-wide mask that adapters
install for their tokens, which covers every logger and tracebacks too."""

from __future__ import annotations

import logging

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
