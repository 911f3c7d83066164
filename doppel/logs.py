"""Logging set-up for every Doppel process, with secrets masked out of every record."""

from __future__ import annotations

import logging
import os

from doppel.config import REDIS_URL_ENV, TOKEN_ENV


class SecretMask(logging.Filter):
    """Replaces each known secret value with ``***`` in the final message of a record."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        masked = message
        for secret in self.secrets:
            masked = masked.replace(secret, "***")
        if masked != message:
            record.msg, record.args = masked, None
        return True


def secrets_from_env(env: dict[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    names = [*TOKEN_ENV.values(), REDIS_URL_ENV, "DOPPEL_REDIS_PASSWORD"]
    return [env[name] for name in names if env.get(name)]


def setup_logging(verbose: int = 0, env: dict[str, str] | None = None) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(SecretMask(secrets_from_env(env)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The libraries' own debug chatter is not ours to show at -v.
    for noisy in ("asyncio", "urllib3", "httpx", "discord", "telegram"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
