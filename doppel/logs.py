"""Logging set-up for every Doppel process, with secrets masked out of every record.

``guard_secret`` masks a token, key or Redis URL in every log record of the process, and in
every traceback Python prints by itself, past logging: an uncaught exception
(``sys.excepthook``), one in a thread (``threading.excepthook``) and one Python can only ignore,
in a ``__del__`` say (``sys.unraisablehook``). asyncio reports through logging already.

Tested in ``tests/doppel/test_logs.py`` (records, tracebacks, uncaught exceptions in a subprocess).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback

from doppel.config import REDIS_URL_ENV, TOKEN_ENV


class SecretMask(logging.Filter):
    """Replaces each known secret value (six characters or more) with ``***`` in log records.

    As a handler's filter it covers that handler. ``guard_secret`` puts the process's one mask into
    the log record factory instead, which covers every logger and every handler, tracebacks
    included: handlers' filters only see their own records, and libraries log request URLs that
    contain a token (python-telegram-bot's base URL, httpx's request lines).
    """

    def __init__(self, secrets: list[str] | tuple[str, ...] = ()):
        super().__init__()
        self.secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if len(secret) >= 6 and secret not in self.secrets:
            self.secrets.append(secret)
            self.secrets.sort(key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # boundary: a broken format string is the logging module's to report
            return True
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            if self.mask(text) != text:  # formatters print exc_text when there is no exc_info
                record.exc_text, record.exc_info = self.mask(text), None
        return True


# The process's mask, in the log record factory once the first secret is guarded.
_PROCESS_MASK = SecretMask()


def guard_secret(secret: str) -> None:
    """Mask ``secret`` in every log record of this process from now on (tokens, keys, Redis URLs)."""
    _PROCESS_MASK.add(secret)
    factory = logging.getLogRecordFactory()
    if getattr(factory, "masks_secrets", False):
        return

    def masking_factory(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        _PROCESS_MASK.filter(record)
        return record

    masking_factory.masks_secrets = True
    logging.setLogRecordFactory(masking_factory)
    _mask_printed_tracebacks()


def _print_masked(header: str, exc_type, exc, tb) -> None:
    text = header + "".join(traceback.format_exception(exc_type, exc, tb))
    try:
        sys.stderr.write(_PROCESS_MASK.mask(text))
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # no stderr left (closed, or None under pythonw)
        pass


def _excepthook(exc_type, exc, tb) -> None:
    _print_masked("", exc_type, exc, tb)


def _thread_excepthook(args) -> None:
    if args.exc_type is SystemExit:  # as the default hook: a thread's SystemExit is silent
        return
    name = args.thread.name if args.thread is not None else threading.get_ident()
    _print_masked(f"Exception in thread {name}:\n", args.exc_type, args.exc_value, args.exc_traceback)


def _unraisablehook(unraisable) -> None:
    where = f"{unraisable.err_msg or 'Exception ignored in'}: {unraisable.object!r}\n"
    _print_masked(where, unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback)


def _mask_printed_tracebacks() -> None:
    """Route the tracebacks Python prints itself through the mask. Hooks someone else installed
    (a debugger, pytest) are left alone: they are not the defaults that print the raw text."""
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _excepthook
    if threading.excepthook is threading.__excepthook__:
        threading.excepthook = _thread_excepthook
    if sys.unraisablehook is sys.__unraisablehook__:
        sys.unraisablehook = _unraisablehook


def secrets_from_env(env: dict[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    names = [*TOKEN_ENV.values(), REDIS_URL_ENV, "DOPPEL_REDIS_PASSWORD"]
    return [env[name] for name in names if env.get(name)]


def setup_logging(verbose: int = 0, env: dict[str, str] | None = None) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    for secret in secrets_from_env(env):
        guard_secret(secret)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The libraries' own debug chatter is not ours to show at -v.
    for noisy in ("asyncio", "urllib3", "httpx", "discord", "telegram"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
