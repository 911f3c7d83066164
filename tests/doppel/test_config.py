"""Settings: the shipped example, one-line errors naming key/value/allowed, secrets from env only."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from doppel.config import Settings, load_settings, settings_from_dict
from doppel.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "doppel.example.toml"


def test_example_config_loads_and_equals_the_defaults():
    example = load_settings(EXAMPLE, env={})
    defaults = settings_from_dict({}, env={})
    assert example.model_dump(exclude={"data_dir", "source"}) == defaults.model_dump(exclude={"data_dir", "source"})


def test_example_config_documents_every_key():
    with EXAMPLE.open("rb") as handle:
        example = tomllib.load(handle)
    text = EXAMPLE.read_text()
    for section_name, section in Settings.model_fields.items():
        if section_name in ("source",):
            continue
        annotation = section.annotation
        if hasattr(annotation, "model_fields"):
            for key in annotation.model_fields:
                assert key in example[section_name], f"[{section_name}] {key} is missing from the example"
        else:
            assert section_name in text, f"{section_name} is not documented in the example"


def test_no_file_means_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DOPPEL_CONFIG", raising=False)
    settings = load_settings(env={})
    assert settings.source == "defaults" and settings.redis.url == "" and settings.worker.engine == "echo"


@pytest.mark.parametrize("toml, expected", [
    ("[worker]\nconcurrency = 0\n", "doppel.toml: worker.concurrency = 0: Input should be greater than or equal to 1"),
    ("[worker]\nconcurrency = 'many'\n", "worker.concurrency = 'many'"),
    ("[worker]\nengine = 'gpt'\n", "worker.engine = 'gpt': Input should be 'echo'"),
    ("[worker]\nthreads = 4\n", "doppel.toml: unknown key 'worker.threads'"),
    ("colour = 'red'\n", "doppel.toml: unknown key 'colour'"),
    ("[redis]\nurl = 'http://localhost:6379'\n", "redis.url = 'http://localhost:6379': must be a redis://"),
    ("[redis]\nappendfsync = 'never'\n", "redis.appendfsync = 'never': Input should be 'always' or 'everysec'"),
    ("[bot]\nname = 'my bot'\n", "bot.name = 'my bot'"),
    ("[discord]\ntoken = 'abc'\n", "'discord.token' looks like a secret"),
    ("[redis]\npassword = 'hunter2'\n", "'redis.password' looks like a secret"),
    ("[telegram]\nbot_token = 'abc'\n", "'telegram.bot_token' looks like a secret"),
    ("[model]\napi_key = 'abc'\n", "'model.api_key' looks like a secret"),
    ("[worker\n", "not valid TOML"),
])
def test_bad_config_is_one_clear_line(tmp_path, toml, expected):
    path = tmp_path / "doppel.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert "hunter2" not in message and "'abc'" not in message, "a secret's value is never echoed"


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"does-not-exist\.toml does not exist"):
        load_settings(tmp_path / "does-not-exist.toml", env={})


def test_tokens_come_from_the_environment_only():
    settings = settings_from_dict({"discord": {"enabled": True}}, env={})
    with pytest.raises(ConfigError, match="DOPPEL_DISCORD_TOKEN is not set"):
        settings.token("discord", env={})
    token = settings.token("discord", env={"DOPPEL_DISCORD_TOKEN": "sekret-token-123"})
    assert token.get_secret_value() == "sekret-token-123"
    assert "sekret" not in repr(token) and "sekret" not in str(settings.model_dump())


def test_redis_url_from_env_overrides_the_file_and_is_redacted_in_errors():
    settings = settings_from_dict({"redis": {"url": "redis://a:6379"}}, env={"DOPPEL_REDIS_URL": "redis://b:6380/1"})
    assert settings.redis.url == "redis://b:6380/1"
    with pytest.raises(ConfigError) as info:
        settings_from_dict({}, env={"DOPPEL_REDIS_URL": "http://user:pa55word@host"})
    assert "pa55word" not in str(info.value) and "DOPPEL_REDIS_URL" in str(info.value)
