"""The adapter registry: versioned adapter directories with cards, an index and routes in Redis.

On disk, under ``root``: ``<name>/v<N>/`` holds a peft adapter (adapter_config.json and weights)
and ``card.json``. A version's weights are never rewritten: publishing again makes ``v<N+1>``, so a
worker never reloads different weights under a name it already served (vLLM issue 42125); only
its card may gain a later measurement (``record_privacy``).

In Redis (keys from ``doppel.relay.Keys``): the index (name -> versions), the default route, the
per-channel routes and the route history for rollback. Workers read a channel's route with each
request (``inference/chat_engine.py``), so a change takes effect for the next request without a
restart; every change also appends an event to the registry event stream, which the web chat's
adapter panel follows (``bot/webchat/panel.py``).

Routes name an adapter as ``name`` (its latest version at the time of routing is pinned:
``name@v3``) so that a later publish of the same name only takes effect through ``use``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from doppel.errors import InputError
from doppel.relay import Keys

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
CARD_FILE = "card.json"
_EVENTS_MAXLEN = 10_000


@dataclass(frozen=True)
class AdapterRef:
    """One published version: ``name@vN``."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{self.name}@v{self.version}"

    @classmethod
    def parse(cls, text: str) -> AdapterRef:
        name, _, version = text.partition("@v")
        if not version.isdigit():
            raise InputError(f"adapter reference {text!r} is not of the form name@vN")
        return cls(validate_name(name), int(version))


@dataclass
class Card:
    """What is known about one adapter version; stored as card.json beside the weights."""

    name: str
    version: int
    base_model: str
    rank: int
    alpha: float = 0.0
    target_modules: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    data: dict = field(default_factory=dict)          # dataset summary (samples, owner, sources)
    eval: dict = field(default_factory=dict)          # scores from `doppel eval`
    privacy: dict = field(default_factory=dict)       # `doppel eval privacy`: attempts, raw / filtered hits
    parents: list[dict] = field(default_factory=list)  # blends: [{"adapter": "a@v1", "weight": 0.7}]
    combination: str = ""                              # blends: linear | svd | cat
    notes: str = ""

    @property
    def ref(self) -> AdapterRef:
        return AdapterRef(self.name, self.version)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> Card:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def version_dir(root: Path, ref: AdapterRef) -> Path:
    """Where ``ref``'s weights and card live under the registry root."""
    return Path(root) / ref.name / f"v{ref.version}"


def validate_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise InputError(
            f"adapter name {name!r} is not allowed: use 1-64 lowercase letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return name


class Registry:
    """Adapters under ``root`` and their routes in Redis (a synchronous redis-py client)."""

    def __init__(self, root: Path, redis, keys: Keys):
        self.root = Path(root)
        self.redis = redis
        self.keys = keys

    # -- files -----------------------------------------------------------------------------------
    def path(self, ref: AdapterRef) -> Path:
        return version_dir(self.root, ref)

    def card(self, ref: AdapterRef) -> Card:
        path = self.path(ref) / CARD_FILE
        if not path.is_file():
            raise InputError(f"adapter {ref} is not in the registry ({path} is missing)")
        return Card.from_dict(json.loads(path.read_text()))

    def versions(self, name: str) -> list[int]:
        folder = self.root / validate_name(name)
        if not folder.is_dir():
            return []
        return sorted(int(p.name[1:]) for p in folder.iterdir()
                      if p.name.startswith("v") and p.name[1:].isdigit() and (p / CARD_FILE).is_file())

    def latest(self, name: str) -> AdapterRef:
        versions = self.versions(name)
        if not versions:
            raise InputError(f"no adapter named {name!r}; `doppel adapters list` shows what there is")
        return AdapterRef(name, versions[-1])

    def resolve_ref(self, text: str) -> AdapterRef:
        """``name`` (latest version) or ``name@vN``."""
        return AdapterRef.parse(text) if "@v" in text else self.latest(validate_name(text))

    def list(self) -> list[Card]:
        if not self.root.is_dir():
            return []
        cards = []
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir() and NAME_PATTERN.match(folder.name):
                cards.extend(self.card(AdapterRef(folder.name, v)) for v in self.versions(folder.name))
        return cards

    # -- publishing --------------------------------------------------------------------------------
    def publish(self, adapter_dir: Path, card: Card, *, route_default_if_unset: bool = True) -> AdapterRef:
        """Copy ``adapter_dir`` in as the next version of ``card.name`` and announce it.

        Validation of the weights (they load, base model and rank fit the serving config) is the
        caller's job before this: the registry only refuses what is not an adapter directory.
        """
        validate_name(card.name)
        if not (Path(adapter_dir) / "adapter_config.json").is_file():
            raise InputError(f"{adapter_dir} is not a peft adapter directory (no adapter_config.json)")
        version = (self.versions(card.name) or [0])[-1] + 1
        card.version = version
        target = self.path(card.ref)
        staging = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(adapter_dir, staging)
        (staging / CARD_FILE).write_text(json.dumps(card.to_dict(), indent=2, ensure_ascii=False))
        staging.rename(target)  # atomic: a reader sees a whole version or none
        self.redis.hset(self.keys.adapters, card.name, json.dumps(self.versions(card.name)))
        self._event("publish", adapter=str(card.ref))
        if route_default_if_unset and not self.redis.get(self.keys.default_route):
            self.use(str(card.ref))
        return card.ref

    def record_privacy(self, ref: AdapterRef, privacy: dict) -> Card:
        """Put a ``doppel eval privacy`` summary into ``ref``'s card (rewritten atomically; the
        weights stay as they are) and announce it, so the web panel shows it."""
        card = self.card(ref)
        card.privacy = privacy
        path = self.path(ref) / CARD_FILE
        partial = path.with_name(f".{CARD_FILE}.tmp")
        partial.write_text(json.dumps(card.to_dict(), indent=2, ensure_ascii=False))
        partial.replace(path)
        self._event("card", adapter=str(ref))
        return card

    def remove(self, ref: AdapterRef) -> None:
        routed = {self.redis.get(self.keys.default_route), *self.redis.hvals(self.keys.channel_routes)}
        if str(ref) in routed:
            raise InputError(f"adapter {ref} is in use by a route; `doppel adapters use` another one first")
        shutil.rmtree(self.path(ref), ignore_errors=True)
        self.redis.hset(self.keys.adapters, ref.name, json.dumps(self.versions(ref.name)))
        self._event("remove", adapter=str(ref))

    # -- routing -----------------------------------------------------------------------------------
    def use(self, adapter: str, channel: str | None = None) -> AdapterRef:
        """Route ``channel`` (or the default) to ``adapter`` (``name`` or ``name@vN``)."""
        ref = self.resolve_ref(adapter)
        self.card(ref)  # exists
        if channel:
            self.redis.hset(self.keys.channel_routes, channel, str(ref))
        else:
            previous = self.redis.get(self.keys.default_route)
            pipe = self.redis.pipeline(transaction=True)
            if previous and previous != str(ref):
                pipe.lpush(self.keys.route_history, previous)
                pipe.ltrim(self.keys.route_history, 0, 99)
            pipe.set(self.keys.default_route, str(ref))
            pipe.execute()
        self._event("use", adapter=str(ref), channel=channel or "")
        return ref

    def clear_route(self, channel: str) -> None:
        self.redis.hdel(self.keys.channel_routes, channel)
        self._event("use", adapter="", channel=channel)

    def rollback(self) -> AdapterRef:
        """Return the default route to the adapter it had before the last ``use``."""
        previous = self.redis.lpop(self.keys.route_history)
        if previous is None:
            raise InputError("nothing to roll back to: the default route has no earlier adapter")
        self.redis.set(self.keys.default_route, previous)
        self._event("rollback", adapter=previous)
        return AdapterRef.parse(previous)

    def route(self, channel: str | None = None) -> AdapterRef | None:
        """The adapter ``channel`` is routed to (its own route, else the default)."""
        value = (self.redis.hget(self.keys.channel_routes, channel) if channel else None) or \
            self.redis.get(self.keys.default_route)
        return AdapterRef.parse(value) if value else None

    def routes(self) -> tuple[str | None, dict[str, str]]:
        return self.redis.get(self.keys.default_route), self.redis.hgetall(self.keys.channel_routes)

    def _event(self, kind: str, **fields: str) -> None:
        self.redis.xadd(self.keys.registry_events, {"kind": kind, "at": repr(time.time()), **fields},
                        maxlen=_EVENTS_MAXLEN, approximate=True)


@contextlib.contextmanager
def open_registry(settings) -> Iterator[Registry]:
    """The registry of these settings (adapters root, Redis, key prefix), closed after use."""
    from doppel.redis_client import sync_client
    from doppel.redis_server import redis_url
    from doppel.relay import Keys

    with redis_url(settings) as url:
        client = sync_client(url)
        try:
            yield Registry(settings.adapters_root(), client, Keys(settings.redis.prefix))
        finally:
            client.close()
