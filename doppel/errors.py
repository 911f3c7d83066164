"""Doppel's small vocabulary of exceptions, and the one place that classifies them.

User mistakes (bad config, bad files, bad commands) are ``DoppelError`` subclasses: the CLI prints
their message as one line and exits non-zero, without a traceback. Everything else is a bug or an
outage, and the boundary that catches it logs the traceback.

Tested through the modules that raise them; the CLI's one-line rendering and exit codes in
``tests/doppel/test_cli.py``.
"""

from __future__ import annotations

from enum import Enum


class DoppelError(Exception):
    """A problem the user can fix; ``str(exc)`` is a complete one-line explanation."""

    exit_code = 1


class ConfigError(DoppelError):
    """A setting is missing or wrong: the message names the key, the value and what is allowed."""

    exit_code = 2


class InputError(DoppelError):
    """A file, record or command argument the user gave is not usable."""

    exit_code = 2


class RedisUnavailable(DoppelError):
    """The relay's Redis cannot be reached or started."""

    exit_code = 3


class EngineError(DoppelError):
    """An engine could not be created or could not generate (missing model, missing package)."""

    exit_code = 4


class Kind(Enum):
    USER = "user"            # fix the input; no traceback
    TRANSIENT = "transient"  # retry later (network, Redis restarting)
    BUG = "bug"              # log the traceback


def classify(exc: BaseException) -> Kind:
    """Sort an exception into what the boundary that caught it should do."""
    if isinstance(exc, DoppelError) and not isinstance(exc, RedisUnavailable):
        return Kind.USER
    if isinstance(exc, RedisUnavailable | ConnectionError | TimeoutError):
        return Kind.TRANSIENT
    # redis-py's errors do not subclass the builtins; import lazily to keep this module light.
    try:
        import redis.exceptions as rexc
    except ImportError:  # pragma: no cover - redis is a core dependency
        return Kind.BUG
    if isinstance(exc, rexc.ConnectionError | rexc.TimeoutError | rexc.BusyLoadingError):
        return Kind.TRANSIENT
    if isinstance(exc, rexc.ResponseError) and str(exc).startswith(("LOADING", "TRYAGAIN", "MASTERDOWN")):
        return Kind.TRANSIENT
    return Kind.BUG
