"""Typed settings: one ``doppel.toml`` for everything but secrets, the environment for secrets.

``load_settings`` is called once, at the entry point, and the resulting ``Settings`` is passed
down explicitly. Every validation problem becomes one ``ConfigError`` line that names the key,
the value and what is allowed. Tokens and passwords are only ever read from the environment and
are held as ``SecretStr``, so they do not show up in reprs, logs or errors.
"""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError

from doppel.errors import ConfigError
from doppel.settings_sections import (
    BotSettings,
    DataSettings,
    HistorySettings,
    ModelSettings,
    OpenAISettings,
    PlatformSettings,
    PrivacySettings,
    RedisSettings,
    RelaySettings,
    SamplingSettings,
    Section,
    TrainSettings,
    WebSettings,
    WorkerSettings,
)

CONFIG_ENV = "DOPPEL_CONFIG"
DATA_DIR_ENV = "DOPPEL_DATA_DIR"
REDIS_URL_ENV = "DOPPEL_REDIS_URL"
TOKEN_ENV = {"discord": "DOPPEL_DISCORD_TOKEN", "telegram": "DOPPEL_TELEGRAM_TOKEN"}
# A key is taken for a secret when one of its words (split on "_") is one of these: "bot_token"
# and "api_key" are refused, "max_tokens" is not.
SECRET_WORDS = frozenset(("token", "password", "passwd", "secret", "apikey", "key"))


class Settings(Section):
    data_dir: Path = Field(default_factory=lambda: default_data_dir())
    redis: RedisSettings = RedisSettings()
    relay: RelaySettings = RelaySettings()
    worker: WorkerSettings = WorkerSettings()
    bot: BotSettings = BotSettings()
    discord: PlatformSettings = PlatformSettings()
    telegram: PlatformSettings = PlatformSettings()
    data: DataSettings = DataSettings()
    model: ModelSettings = ModelSettings()
    sampling: SamplingSettings = SamplingSettings()
    history: HistorySettings = HistorySettings()
    openai: OpenAISettings = OpenAISettings()
    train: TrainSettings = TrainSettings()
    web: WebSettings = WebSettings()
    privacy: PrivacySettings = PrivacySettings()
    # Where the settings came from, for messages ("doppel.toml: ..."); not a TOML key.
    source: str = Field(default="defaults", exclude=True)

    def adapters_root(self) -> Path:
        if self.model.adapters_dir:
            return Path(self.model.adapters_dir).expanduser()
        return Path(self.data_dir) / "adapters"

    def worker_name(self) -> str:
        return self.worker.name or f"{socket.gethostname()}-{os.getpid()}"

    def token(self, platform: str, env: dict[str, str] | None = None) -> SecretStr:
        """The bot token for a platform, from the environment only."""
        env = os.environ if env is None else env
        name = TOKEN_ENV[platform]
        value = env.get(name, "").strip()
        if not value:
            raise ConfigError(
                f"{name} is not set: the {platform} bot token comes from the environment "
                "(never from doppel.toml)"
            )
        return SecretStr(value)


def default_data_dir() -> Path:
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("doppel", appauthor=False))


def find_config(explicit: str | Path | None) -> Path | None:
    """The config file to read: --config, then $DOPPEL_CONFIG, then ./doppel.toml if present."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    local = Path("doppel.toml")
    return local if local.is_file() else None


def _find_secret_keys(table: dict, path: str = "") -> list[str]:
    found = []
    for key, value in table.items():
        dotted = f"{path}{key}"
        if SECRET_WORDS & set(key.lower().split("_")):
            found.append(dotted)
        if isinstance(value, dict):
            found.extend(_find_secret_keys(value, dotted + "."))
    return found


def _one_line(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'"
    if first["type"] == "missing":
        return f"{source}: key '{key}' is required"
    value = first.get("input")
    shown = repr(value) if not isinstance(value, dict) else "a table"
    if len(shown) > 80:
        shown = shown[:77] + "..."
    message = first["msg"].removeprefix("Value error, ")
    more = len(error.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {key} = {shown}: {message}{tail}"


def settings_from_dict(data: dict, source: str = "doppel.toml", env: dict[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    secrets = _find_secret_keys(data)
    if secrets:
        hint = ", ".join(f"${v}" for v in TOKEN_ENV.values())
        raise ConfigError(
            f"{source}: '{secrets[0]}' looks like a secret; secrets are read from the environment "
            f"({hint}, ${REDIS_URL_ENV}), never from the config file"
        )
    data = dict(data)
    if env.get(REDIS_URL_ENV):
        data["redis"] = {**data.get("redis", {}), "url": env[REDIS_URL_ENV]}
        source_for_errors = f"{source} (with ${REDIS_URL_ENV})"
    else:
        source_for_errors = source
    try:
        return Settings(**data, source=source)
    except ValidationError as exc:
        raise ConfigError(_redact_url(_one_line(exc, source_for_errors))) from None


def _redact_url(line: str) -> str:
    """Hide a password inside a redis://user:pass@host URL quoted in an error line."""
    import re

    return re.sub(r"(://[^:/@\s']*:)[^@\s']*@", r"\1***@", line)


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read and validate the config file (or defaults when there is none)."""
    config_path = find_config(path)
    if config_path is None:
        return settings_from_dict({}, source="defaults", env=env)
    if not config_path.is_file():
        raise ConfigError(f"config file {config_path} does not exist")
    try:
        with config_path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{config_path}: not UTF-8 text") from None
    return settings_from_dict(data, source=str(config_path), env=env)


def settings_of(obj) -> Settings:
    """The settings the CLI built at its entry point (the click context object), or the defaults
    when a command runs on its own (click's test runner)."""
    settings = getattr(obj, "settings", None)
    return settings if settings is not None else settings_from_dict({}, source="defaults")
