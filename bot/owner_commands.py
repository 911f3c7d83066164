"""Owner commands: ``/clone ...`` typed as text, or picked from the platform's command menu.

Only a message that *starts* with ``/clone`` (or ``/about``) is a command, so a command quoted
inside a normal message, or text a mention smuggles in, is just chat. Only the platform user ids
in ``[discord|telegram].owner_ids`` may run them (never a display name: anyone can take a name);
anyone else gets a short refusal and the attempt is logged. Commands are never recorded in the
history and never reach the model.

Routes go through ``doppel.registry.Registry`` (adapter cards live under
``<data_dir>/adapters``, so ``use``/``adapters`` with scores need the bot on the registry's host).
``blend`` is queued as a ``Job`` on the jobs stream; the job runner reports back by writing a
``Reply`` whose ``request_id`` is the job id to this bot's reply stream, which the bot posts in
the job's channel like any reply (see ``Job``).

Per-channel overrides live in the hashes ``Keys.channel_settings(channel)`` (``here``) and
``Keys.global_settings`` (``everywhere``), fields: ``paused`` ("1"), ``temperature`` (read by the
worker) and ``probability`` (the lurking chance, read by the bot). A channel override beats the
global one, except ``paused``: paused anywhere it applies to means paused.

``forget`` wipes every copy of the chat Redis keeps for this bot: its history, its dead letters
(requests no worker could answer, with their text) and the replies in this bot's reply stream
not posted yet, with the chat's reply order (later replies then need not wait for those).

Tested in ``tests/bot/test_owner_commands.py``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.platform import CommandSpec, Incoming
from doppel.errors import DoppelError
from doppel.jobs import Job
from doppel.relay import Keys

log = logging.getLogger(__name__)

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("status", "", "Worker health, queue, this chat's adapter, temperature, paused?"),
    CommandSpec("adapters", "", "List the adapters with their eval scores"),
    CommandSpec("use", "NAME [here|everywhere]", "Route to an adapter (default: everywhere)"),
    CommandSpec("rollback", "[here]", "Back to the previous default adapter (here: drop this chat's route)"),
    CommandSpec("blend", "a:0.7 b:0.3 as NAME", "Blend adapters into a new one (a background job)"),
    CommandSpec("temp", "0.8|reset [here]", "Sampling temperature (default: everywhere)"),
    CommandSpec("chance", "0.05|reset [here]", "How often it joins in unprompted in groups"),
    CommandSpec("pause", "[here|everywhere]", "Stop answering and listening (default: here)"),
    CommandSpec("resume", "[here|everywhere]", "Start again (default: here)"),
    CommandSpec("forget", "", "Wipe this chat's history, failed requests and unsent replies"),
    CommandSpec("say", "TEXT", "Say TEXT through the clone in this chat"),
    CommandSpec("help", "", "List the commands"),
    CommandSpec("about", "", "What this bot is (anyone may ask)", owner_only=False),
)
_BY_NAME = {spec.name: spec for spec in COMMANDS}

_COMMAND = re.compile(r"^/(clone|about)(?:@([A-Za-z0-9_]+))?(?:\s+(.*))?$", re.DOTALL | re.IGNORECASE)
REFUSAL = "Sorry, only the owner can use /clone commands."


def parse_command(text: str, username: str = "") -> tuple[str, str] | None:
    """(command, arguments) if ``text`` is a command for this bot, else None.

    ``/clone@OtherBot ...`` in a Telegram group is for another bot: None, so it stays chat.
    """
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    word, addressee, rest = match.group(1).lower(), match.group(2), (match.group(3) or "").strip()
    if addressee and addressee.lower() != username.lower():
        return None
    if word == "about":
        return "about", rest
    name, _, args = rest.partition(" ")
    return (name.lower() or "help"), args.strip()


# -- running commands --------------------------------------------------------------------------------

Say = Callable[[str, str], Awaitable[None]]  # (channel, text)


class Commands:
    """Runs one parsed command for one message and returns the text to answer with ("" for none)."""

    def __init__(self, *, redis, keys: Keys, settings, platform: str, bot: str, owner_ids: frozenset[str],
                 say: Say, redis_url: str = "", registry_root: Path | None = None, about: str = ""):
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.platform = platform
        self.bot = bot
        self.owner_ids = owner_ids
        self.say = say
        self.redis_url = redis_url
        if registry_root is None:  # [model] adapters_dir when the config has it, else data_dir/adapters
            root = getattr(settings, "adapters_root", None)
            registry_root = root() if callable(root) else Path(settings.data_dir) / "adapters"
        self.registry_root = registry_root
        self.about = about
        self._sync_redis = None

    def close(self) -> None:
        if self._sync_redis is not None:
            self._sync_redis.close()
            self._sync_redis = None

    def is_owner(self, author_id: str) -> bool:
        return author_id in self.owner_ids

    async def run(self, event: Incoming, name: str, args: str) -> str:
        spec = _BY_NAME.get(name)
        if spec is not None and not spec.owner_only:
            return self.about
        if not self.is_owner(event.author_id):
            log.warning("%s: user %s (%r) tried /clone %s in %s: not an owner", self.platform, event.author_id,
                        event.author_name[:60], name[:30], event.channel)
            return REFUSAL
        if spec is None:
            return f"Unknown command {name[:30]!r}. {self.help()}"
        log.info("%s: owner %s ran /clone %s in %s", self.platform, event.author_id, name, event.channel)
        try:
            return await getattr(self, f"_cmd_{name}")(event, args.strip())
        except DoppelError as exc:  # a mistake the owner can fix: say what it was
            return str(exc)
        except Exception:  # boundary: a failed command must not take the bot down
            log.exception("/clone %s failed", name)
            return f"/clone {name} failed; see the bot log."

    def help(self) -> str:
        lines = [f"/clone {s.name} {s.usage}".rstrip() + f" — {s.description}" for s in COMMANDS]
        return "Commands:\n" + "\n".join(lines)

    # -- helpers -----------------------------------------------------------------------------------
    def _sync(self):
        """A synchronous client for the registry and the status report (both are sync APIs)."""
        if self._sync_redis is None:
            if not self.redis_url:
                raise DoppelError("no Redis URL was given to the bot's commands")
            from doppel.redis_client import sync_client

            self._sync_redis = sync_client(self.redis_url)
        return self._sync_redis

    def _registry(self):
        from doppel.registry import Registry

        return Registry(self.registry_root, self._sync(), self.keys)

    async def _in_thread(self, function, *args):
        return await asyncio.to_thread(function, *args)

    @staticmethod
    def _scope(args: str, default: str) -> tuple[str, str]:
        """Split a trailing here/everywhere off ``args``."""
        words = args.split()
        if words and words[-1].lower() in ("here", "everywhere"):
            return " ".join(words[:-1]), words[-1].lower()
        return args, default

    async def overrides(self, channel: str) -> tuple[dict, dict]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.channel_settings(channel))
            pipe.hgetall(self.keys.global_settings)
            here, everywhere = await pipe.execute()
        return here, everywhere

    # -- the commands ----------------------------------------------------------------------------------
    async def _cmd_help(self, event: Incoming, args: str) -> str:
        return self.help()

    async def _cmd_status(self, event: Incoming, args: str) -> str:
        from doppel.health import read_status

        here, everywhere = await self.overrides(event.channel)
        route = await self.redis.hget(self.keys.channel_routes, event.channel)
        default = await self.redis.get(self.keys.default_route)
        try:
            status = await self._in_thread(read_status, self._sync(), self.keys)
            workers = ", ".join(sorted(status.workers)) or "none alive"
            health = (f"workers: {len(status.workers)} ({workers}); queued {status.queued}, "
                      f"in progress {status.pending}, dead letters {status.dead_letters}")
        except Exception as exc:  # boundary: status must answer even when the report fails
            health = f"workers: unknown ({type(exc).__name__})"
        temperature = here.get("temperature") or everywhere.get("temperature")
        chance = here.get("probability") or everywhere.get("probability") or self.settings.bot.trigger_probability
        paused = "here" if here.get("paused") == "1" else "everywhere" if everywhere.get("paused") == "1" else "no"
        adapter = route or default or "base model (no route)"
        return "\n".join([
            health,
            f"adapter here: {adapter}{' (this chat)' if route else ''}",
            f"temperature: {temperature or 'worker default'}"
            f"{' (this chat)' if here.get('temperature') else ''}",
            f"chance: {chance}",
            f"paused: {paused}",
        ])

    async def _cmd_adapters(self, event: Incoming, args: str) -> str:
        route = await self.redis.hget(self.keys.channel_routes, event.channel)
        default = await self.redis.get(self.keys.default_route)
        lines = []
        if self.registry_root.is_dir():
            for card in await self._in_thread(lambda: self._registry().list()):
                ref = str(card.ref)
                marks = [m for m, hit in (("default", ref == default), ("here", ref == route)) if hit]
                scores = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in list(card.eval.items())[:4]) or "not evaluated"
                lines.append(f"{ref}: {scores}{' [' + ', '.join(marks) + ']' if marks else ''}")
        else:  # a bot on another host sees the index only
            for name, versions in sorted((await self.redis.hgetall(self.keys.adapters)).items()):
                lines.append(f"{name}: versions {versions} (cards are on the registry host)")
        return "\n".join(lines) if lines else "No adapters published yet."

    async def _cmd_use(self, event: Incoming, args: str) -> str:
        name, scope = self._scope(args, "everywhere")
        if not name or " " in name:
            return "Usage: /clone use NAME [here|everywhere]"
        channel = event.channel if scope == "here" else None
        ref = await self._in_thread(lambda: self._registry().use(name, channel))
        return f"Using {ref} {'in this chat' if channel else 'everywhere'}."

    async def _cmd_rollback(self, event: Incoming, args: str) -> str:
        if args.lower() == "here":
            await self._in_thread(lambda: self._registry().clear_route(event.channel))
            default = await self.redis.get(self.keys.default_route)
            return f"This chat follows the default again ({default or 'base model'})."
        if args:
            return "Usage: /clone rollback [here]"
        ref = await self._in_thread(lambda: self._registry().rollback())
        return f"Rolled back: the default is {ref} again."

    async def _cmd_blend(self, event: Incoming, args: str) -> str:
        from doppel.registry import validate_name

        usage = "Usage: /clone blend a:0.7 b:0.3 as NAME"
        weights, _, name = args.rpartition(" as ")
        name = name.strip()
        sources = []
        for item in weights.split():
            adapter, _, weight = item.rpartition(":")
            try:
                value = float(weight)
            except ValueError:
                return usage
            if not adapter or not 0 < value <= 10:
                return f"{usage} (weights are numbers above 0)"
            sources.append({"adapter": adapter, "weight": value})
        if len(sources) < 2 or not name:
            return usage
        validate_name(name)
        if self.registry_root.is_dir():  # check the sources exist where the registry is visible
            registry = await self._in_thread(self._registry)
            for source in sources:
                await self._in_thread(registry.resolve_ref, source["adapter"])
        job = Job(kind="blend", args={"name": name, "sources": sources, "combination": "linear"},
                  platform=self.platform, bot=self.bot, channel=event.channel, requested_by=event.author_id)
        try:  # the group first, so a runner that starts later still sees this job
            await self.redis.xgroup_create(self.keys.jobs, self.keys.jobs_group, id="0", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self.redis.xadd(self.keys.jobs, job.to_fields())
        mix = " + ".join(f"{s['adapter']}×{s['weight']:g}" for s in sources)
        return f"Queued: blend {mix} as {name}. I'll say here when it is done."

    async def _set(self, channel: str, scope: str, field_name: str, value: str | None) -> None:
        key = self.keys.channel_settings(channel) if scope == "here" else self.keys.global_settings
        if value is None:
            await self.redis.hdel(key, field_name)
        else:
            await self.redis.hset(key, field_name, value)

    async def _number(self, event: Incoming, args: str, field_name: str, low: float, high: float, usage: str) -> str:
        value, scope = self._scope(args, "everywhere")
        where = "in this chat" if scope == "here" else "everywhere"
        if value.lower() in ("reset", "default"):
            await self._set(event.channel, scope, field_name, None)
            return f"{field_name} reset {where}."
        try:
            number = float(value)
        except ValueError:
            return usage
        if not low <= number <= high:
            return f"{field_name} must be between {low:g} and {high:g}."
        await self._set(event.channel, scope, field_name, repr(number))
        return f"{field_name} = {number:g} {where}."

    async def _cmd_temp(self, event: Incoming, args: str) -> str:
        return await self._number(event, args, "temperature", 0.0, 2.0, "Usage: /clone temp 0.8|reset [here]")

    async def _cmd_chance(self, event: Incoming, args: str) -> str:
        return await self._number(event, args, "probability", 0.0, 1.0, "Usage: /clone chance 0.05|reset [here]")

    async def _pause(self, event: Incoming, args: str, paused: bool) -> str:
        rest, scope = self._scope(args, "here")
        if rest:
            return f"Usage: /clone {'pause' if paused else 'resume'} [here|everywhere]"
        await self._set(event.channel, scope, "paused", "1" if paused else None)
        where = "in this chat" if scope == "here" else "everywhere"
        if paused:
            return f"Paused {where}: not answering or listening until /clone resume."
        _, everywhere = await self.overrides(event.channel)
        if scope == "here" and everywhere.get("paused") == "1":
            return "Resumed here, but still paused everywhere: /clone resume everywhere."
        return f"Resumed {where}."

    async def _cmd_pause(self, event: Incoming, args: str) -> str:
        return await self._pause(event, args, True)

    async def _cmd_resume(self, event: Incoming, args: str) -> str:
        return await self._pause(event, args, False)

    async def _cmd_forget(self, event: Incoming, args: str) -> str:
        from doppel.history import forget

        channel = event.channel
        count = await self.redis.llen(self.keys.history(channel))
        await forget(self.redis, self.keys, channel)
        dead = await drop_channel_entries(self.redis, self.keys.dead_letter, channel)
        replies = await drop_channel_entries(self.redis, self.keys.replies(self.bot), channel,
                                             group=self.keys.bot_group(self.bot))
        await self.redis.delete(self.keys.channel_order(self.bot, channel))
        log.info("%s: forgot %s: %d turns, %d dead letters, %d unsent replies", self.platform, channel, count,
                 dead, replies)
        also = [f"{n} {one if n == 1 else many}" for n, one, many in (
            (dead, "dead letter", "dead letters"), (replies, "unsent reply", "unsent replies")) if n]
        also_text = f", {' and '.join(also)}" if also else ""
        return f"Forgot this chat's history ({count} message{'s' if count != 1 else ''}){also_text}."

    async def _cmd_say(self, event: Incoming, args: str) -> str:
        if not args:
            return "Usage: /clone say TEXT"
        await self.say(event.channel, args)
        return ""

    async def _cmd_about(self, event: Incoming, args: str) -> str:
        return self.about


async def drop_channel_entries(redis, stream: str, channel: str, *, group: str | None = None,
                               page: int = 500) -> int:
    """Delete the entries of ``stream`` whose ``channel`` field is ``channel`` (acked first for
    ``group``, so no reader holds them pending); returns how many. Pages through the stream:
    the dead letters may hold up to 100,000 entries."""
    dropped, start = 0, "-"
    while True:
        entries = await redis.xrange(stream, min=start, max="+", count=page)
        ours = [entry_id for entry_id, fields in entries if (fields or {}).get("channel") == channel]
        if ours:
            if group is not None:
                try:
                    await redis.xack(stream, group, *ours)
                except Exception as exc:  # no such group yet: nothing is pending
                    if "NOGROUP" not in str(exc):
                        raise
            dropped += await redis.xdel(stream, *ours)
        if len(entries) < page:
            return dropped
        start = "(" + entries[-1][0]  # exclusive: after the last one seen
