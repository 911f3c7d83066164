"""The relay contract between bots and workers: every Redis key and stream name, and the schema.

Both sides import this module, so it imports nothing but the standard library. Nothing else in
Doppel spells a key: if a key is not built here, it does not exist.

Messages travel as flat Redis stream entries (str -> str). ``Request.from_fields`` and
``Reply.from_fields`` are the only parsers; they raise ``BadMessage`` with a one-line reason,
which the worker writes to the dead-letter stream instead of crashing.
"""

from __future__ import annotations

import json
import time
import uuid
import zlib
from dataclasses import dataclass, field

SCHEMA_VERSION = 1

CHAT_TYPES = ("dm", "group")
TRIGGERS = ("dm", "mention", "reply", "name", "random", "command", "say", "chat")
REPLY_STATUSES = ("ok", "rejected", "error")

# Ids and channel keys are short platform identifiers; anything longer is not one.
MAX_ID_CHARS = 128
MAX_CHANNEL_CHARS = 256

# Platform limits are 2,000 (Discord) and 4,096 (Telegram) characters; 16k leaves room for
# pasted text while keeping one request far below what could stall a worker.
DEFAULT_MAX_TEXT_CHARS = 16_000


class BadMessage(ValueError):
    """A stream entry that does not follow the schema; the message says which field and why."""


@dataclass(frozen=True)
class Keys:
    """Builds every Redis key Doppel uses, under one prefix (so two deployments can share a server)."""

    prefix: str = "doppel"

    def __post_init__(self) -> None:
        # ':' would let one deployment's keys collide with another's; glob characters would make
        # the SCAN patterns below match other deployments' keys.
        if not self.prefix or any(ch in self.prefix for ch in ":*?[]\\ "):
            raise ValueError(f"key prefix {self.prefix!r} must be non-empty, without ':', spaces or *?[]\\")

    # -- request path ------------------------------------------------------------------------
    @property
    def requests(self) -> str:
        """The shared request stream: every worker reads it (``shards = 1``, and bots from before shards)."""
        return f"{self.prefix}:requests"

    def request_shard(self, shard: int) -> str:
        """Request stream ``shard`` of ``shard_count``: read only by the worker holding its lease."""
        return f"{self.prefix}:requests:{shard}"

    def request_stream(self, channel: str, shards: int) -> str:
        """Where a bot with ``shards`` shards queues ``channel``'s requests."""
        return self.request_shard(shard_of(channel, shards)) if shards > 1 else self.requests

    def request_streams(self, shards: int) -> list[str]:
        """Every request stream of a deployment with ``shards`` shards, the shared one first."""
        return [self.requests, *(self.request_shard(k) for k in range(shards if shards > 1 else 0))]

    def shard_of_stream(self, stream: str) -> int | None:
        """The shard number of a stream built by ``request_shard``; None for any other."""
        head = f"{self.prefix}:requests:"
        return int(stream[len(head):]) if stream.startswith(head) and stream[len(head):].isdigit() else None

    @property
    def shard_count(self) -> str:
        """String: the largest shard count any bot or worker has used; workers cover that many."""
        return f"{self.prefix}:relay:shards"

    def shard_lease(self, shard: int) -> str:
        """String: the name of the worker that reads request shard ``shard``, with a TTL it renews."""
        return f"{self.prefix}:lease:{shard}"

    @property
    def workers(self) -> str:
        """Set of the names of workers that take part in sharing the shards (live or recently so)."""
        return f"{self.prefix}:workers"

    @property
    def workers_group(self) -> str:
        return "workers"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}:deadletter"

    # -- reply path (one stream and group per bot instance) ------------------------------------
    def replies(self, bot: str) -> str:
        return f"{self.prefix}:replies:{bot}"

    def bot_group(self, bot: str) -> str:
        return f"bot:{bot}"

    def posted(self, bot: str, request_id: str) -> str:
        """Set once a bot has posted a request's reply: the at-most-once guard."""
        return f"{self.prefix}:posted:{bot}:{request_id}"

    def channel_order(self, bot: str, channel: str) -> str:
        """List of request ids in the order the bot sent them, so replies go out in that order."""
        return f"{self.prefix}:order:{bot}:{channel}"

    # -- health ------------------------------------------------------------------------------
    def heartbeat(self, role: str, name: str) -> str:
        return f"{self.prefix}:hb:{role}:{name}"

    def heartbeat_pattern(self, role: str = "*") -> str:
        return f"{self.prefix}:hb:{role}:*"

    def heartbeat_name(self, key: str) -> tuple[str, str]:
        """(role, name) of a key built by ``heartbeat``."""
        _, _, rest = key.partition(f"{self.prefix}:hb:")
        role, _, name = rest.partition(":")
        return role, name

    def reply_streams_pattern(self) -> str:
        return f"{self.prefix}:replies:*"

    # -- conversation state (worker writes, bots read and wipe) ----------------------------------
    def history(self, channel: str) -> str:
        """List of the channel's recent turns (JSON), oldest first: everyone, not only the clone."""
        return f"{self.prefix}:history:{channel}"

    def channel_settings(self, channel: str) -> str:
        """Hash of the owner's per-channel overrides: paused, temperature, top_p, max_tokens..."""
        return f"{self.prefix}:chan:{channel}"

    @property
    def global_settings(self) -> str:
        """Hash of the owner's overrides for every channel (same fields as ``channel_settings``)."""
        return f"{self.prefix}:chan-all"

    # -- adapter registry and routing -------------------------------------------------------------
    @property
    def adapters(self) -> str:
        """Hash: adapter name -> JSON card of its published versions."""
        return f"{self.prefix}:adapters"

    @property
    def default_route(self) -> str:
        """String: the adapter every channel without its own route uses."""
        return f"{self.prefix}:route:default"

    @property
    def channel_routes(self) -> str:
        """Hash: channel -> adapter, overriding the default."""
        return f"{self.prefix}:route:channels"

    @property
    def route_history(self) -> str:
        """List of earlier default routes, newest first, for rollback."""
        return f"{self.prefix}:route:history"

    @property
    def registry_events(self) -> str:
        """Stream of registry changes (publish, use, rollback, remove); the web chat's panel follows it."""
        return f"{self.prefix}:registry:events"

    # -- jobs the owner queues from a chat (blend, ...) --------------------------------------------
    @property
    def jobs(self) -> str:
        return f"{self.prefix}:jobs"

    @property
    def jobs_group(self) -> str:
        return "jobs"

    def bot_of_replies(self, stream: str) -> str:
        """The bot instance whose reply stream is ``stream``."""
        return stream.removeprefix(f"{self.prefix}:replies:")


def shard_of(channel: str, shards: int) -> int:
    """The request shard of ``channel``. crc32 because it is the same in every process (``hash()``
    is salted per process), so every bot puts a channel on the same shard."""
    return zlib.crc32(channel.encode("utf-8", "surrogatepass")) % shards if shards > 1 else 0


def new_request_id() -> str:
    return uuid.uuid4().hex


def _require(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise BadMessage(f"missing field '{name}'")
    return value


def _float(fields: dict[str, str], name: str) -> float:
    raw = _require(fields, name)
    try:
        return float(raw)
    except ValueError:
        raise BadMessage(f"field '{name}' must be a number, got {raw[:40]!r}") from None


def _check_exact_fields(fields: dict[str, str], required: frozenset, optional: frozenset) -> None:
    missing = sorted(required - fields.keys())
    if missing:
        raise BadMessage(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    extra = sorted(fields.keys() - required - optional)
    if extra:
        # Field names are untrusted: keep the message one short line.
        shown = ", ".join(repr(name[:40]).strip("'\"") for name in extra[:5])
        more = f" and {len(extra) - 5} more" if len(extra) > 5 else ""
        raise BadMessage(f"unknown field{'s' if len(extra) > 1 else ''} {shown}{more}")


def _check_version(fields: dict[str, str]) -> None:
    version = _require(fields, "v")
    if version != str(SCHEMA_VERSION):
        raise BadMessage(f"schema version {version[:20]!r} is not supported (this side speaks {SCHEMA_VERSION})")


@dataclass(frozen=True)
class Request:
    """What a bot asks of a worker: one triggered message in one channel."""

    platform: str
    bot: str
    channel: str
    chat_type: str
    author_id: str
    author_name: str
    text: str
    trigger: str
    sent_at: float
    id: str = field(default_factory=new_request_id)
    queued_at: float = field(default_factory=time.time)
    reply_to: str = ""

    _REQUIRED = frozenset(
        ("v", "id", "platform", "bot", "channel", "chat_type", "author_id", "author_name",
         "text", "trigger", "sent_at", "queued_at")
    )
    _OPTIONAL = frozenset(("reply_to",))

    def to_fields(self) -> dict[str, str]:
        fields = {
            "v": str(SCHEMA_VERSION), "id": self.id, "platform": self.platform, "bot": self.bot,
            "channel": self.channel, "chat_type": self.chat_type, "author_id": self.author_id,
            "author_name": self.author_name, "text": self.text, "trigger": self.trigger,
            "sent_at": repr(self.sent_at), "queued_at": repr(self.queued_at),
        }
        if self.reply_to:
            fields["reply_to"] = self.reply_to
        return fields

    @classmethod
    def from_fields(cls, fields: dict[str, str], *, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> Request:
        _check_version(fields)
        _check_exact_fields(fields, cls._REQUIRED, cls._OPTIONAL)
        request = cls(
            id=fields["id"], platform=fields["platform"], bot=fields["bot"],
            channel=fields["channel"], chat_type=fields["chat_type"],
            author_id=fields["author_id"], author_name=fields["author_name"], text=fields["text"],
            trigger=fields["trigger"], sent_at=_float(fields, "sent_at"),
            queued_at=_float(fields, "queued_at"), reply_to=fields.get("reply_to", ""),
        )
        request.validate(max_text_chars=max_text_chars)
        return request

    def validate(self, *, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> None:
        for name in ("id", "platform", "bot", "channel", "author_id"):
            if not getattr(self, name):
                raise BadMessage(f"field '{name}' is empty")
        if len(self.id) > MAX_ID_CHARS or len(self.channel) > MAX_CHANNEL_CHARS:
            raise BadMessage(f"field 'id' or 'channel' is too long (limits {MAX_ID_CHARS} and {MAX_CHANNEL_CHARS})")
        if ":" in self.bot:
            raise BadMessage(f"field 'bot' must not contain ':' (got {self.bot[:40]!r})")
        if self.chat_type not in CHAT_TYPES:
            raise BadMessage(f"field 'chat_type' is {self.chat_type[:20]!r}; allowed: {', '.join(CHAT_TYPES)}")
        if self.trigger not in TRIGGERS:
            raise BadMessage(f"field 'trigger' is {self.trigger[:20]!r}; allowed: {', '.join(TRIGGERS)}")
        if len(self.text) > max_text_chars:
            raise BadMessage(f"text is {len(self.text)} characters; the limit is {max_text_chars}")


@dataclass(frozen=True)
class Reply:
    """A worker's answer to one request: the parts to send as separate messages, in order."""

    request_id: str
    channel: str
    status: str
    parts: tuple[str, ...] = ()
    reason: str = ""
    worker: str = ""
    adapter: str = ""
    reply_to: str = ""
    gen_ms: float = 0.0
    created_at: float = field(default_factory=time.time)

    _REQUIRED = frozenset(("v", "request_id", "channel", "status", "parts", "created_at"))
    _OPTIONAL = frozenset(("reason", "worker", "adapter", "reply_to", "gen_ms"))

    def to_fields(self) -> dict[str, str]:
        fields = {
            "v": str(SCHEMA_VERSION), "request_id": self.request_id, "channel": self.channel,
            "status": self.status, "parts": json.dumps(list(self.parts), ensure_ascii=False),
            "created_at": repr(self.created_at),
        }
        for name in ("reason", "worker", "adapter", "reply_to"):
            if getattr(self, name):
                fields[name] = getattr(self, name)
        if self.gen_ms:
            fields["gen_ms"] = f"{self.gen_ms:.3f}"
        return fields

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Reply:
        _check_version(fields)
        _check_exact_fields(fields, cls._REQUIRED, cls._OPTIONAL)
        if fields["status"] not in REPLY_STATUSES:
            raise BadMessage(f"field 'status' is {fields['status'][:20]!r}; allowed: {', '.join(REPLY_STATUSES)}")
        try:
            parts = json.loads(fields["parts"])
        except (ValueError, RecursionError):  # huge integers and deep nesting are not JSONDecodeError
            raise BadMessage("field 'parts' is not JSON") from None
        if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
            raise BadMessage("field 'parts' must be a JSON list of strings")
        return cls(
            request_id=fields["request_id"], channel=fields["channel"], status=fields["status"],
            parts=tuple(parts), reason=fields.get("reason", ""), worker=fields.get("worker", ""),
            adapter=fields.get("adapter", ""), reply_to=fields.get("reply_to", ""),
            gen_ms=_float(fields, "gen_ms") if fields.get("gen_ms") else 0.0,
            created_at=_float(fields, "created_at"),
        )


def bot_of(fields: dict[str, str]) -> str | None:
    """The bot instance named by a (possibly malformed) request, so a rejection can still reach it."""
    bot = fields.get("bot")
    if bot and ":" not in bot and len(bot) <= 200:
        return bot
    return None
