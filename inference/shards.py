"""Shard leases: which request streams a worker reads, so that each channel stays on one worker.

Bots queue a channel's requests on shard ``crc32(channel) % S`` (``Keys.request_stream``). A worker
reads a shard only while it holds the shard's lease: a key holding the worker's name, with a TTL of
``heartbeat_ttl_s``, that it renews (compare-and-set) every round. A channel is then answered by
one worker, whose vLLM prefix cache holds the channel's window and whose adapter slots hold its
adapter, one request at a time and in order, each prompt holding the previous reply.

Each round (every ``heartbeat_interval_s``) a worker also reads who is alive (the ``Keys.workers``
set, checked against the heartbeat keys) and who holds which lease, and works out the same plan
as every other worker: S // live shards each, one more for the S % live workers that hold the most
now (ties by name), so shards move only when they must. Then:

* below its share it takes free shards, and shards whose holder's heartbeat is gone (a crashed
  worker's); leases still under its own name (it restarted under that name) it holds again. Of a
  shard just taken (``fresh``) the worker claims every pending request, whoever holds it, before it
  reads new ones, so the channel's requests are answered in order;
* above it (a worker joined) it hands shards over: stops reading them, lets their requests in
  flight finish, then deletes the lease (``release_drained``), and the newcomer takes them;
* a shard seen free in two rounds in a row is taken by whoever sees it, share or not, so no shard
  stays unread because workers disagreed for a moment on who is alive.

S is the largest shard count any bot or worker has used (``Keys.shard_count``; each bot ``submit``
raises it in the same script as its XADD), so every stream a request lands on is covered. With
S = 1 there are no leases: every worker reads the shared stream (``Keys.requests``), which all
workers always read as well, for bots configured without shards.
"""

from __future__ import annotations

import logging
import time
import zlib

from doppel.relay import Keys

log = logging.getLogger(__name__)

# KEYS: the shard count. ARGV: this worker's. Returns the larger, stored (unless 1: nothing to cover).
_RAISE_LUA = """
local stored = tonumber(redis.call('GET', KEYS[1])) or 0
local mine = tonumber(ARGV[1])
if mine > 1 and stored < mine then
  redis.call('SET', KEYS[1], mine)
  return mine
end
return stored
"""

# KEYS: lease keys. ARGV: name, TTL (ms). Renews those still ours; 1 or 0 for each.
_RENEW_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# KEYS: lease keys, in the order to try. ARGV: name, TTL (ms), how many to take, then for each key
# the dead holder it was seen with ("" when free). Takes keys still free or still that holder's;
# returns their 1-based indexes.
_TAKE_LUA = """
local out, want = {}, tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  if #out >= want then break end
  local holder = redis.call('GET', key)
  if not holder or holder == ARGV[3 + i] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    out[#out + 1] = i
  end
end
return out
"""

# KEYS: lease keys. ARGV: name. Deletes those still ours.
_RELEASE_LUA = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    released = released + 1
  end
end
return released
"""


def plan(shards: int, holdings: dict[str, int]) -> dict[str, int]:
    """How many shards each live worker should hold: ``shards // n`` each, one more for the
    ``shards % n`` holding the most now (ties by name). ``holdings``: live worker -> leases held."""
    base, extra = divmod(shards, len(holdings))
    ranked = sorted(holdings, key=lambda name: (-holdings[name], name))
    return {name: base + (index < extra) for index, name in enumerate(ranked)}


class ShardLeases:
    def __init__(self, redis, keys: Keys, name: str, *, shards: int, ttl_s: float):
        self.redis = redis
        self.keys = keys
        self.name = name
        self.configured = shards
        self.count = shards            # S in effect: the deployment's, once a round has read it
        self.ttl_ms = int(ttl_s * 1000)
        self.held: set[int] = set()      # leases this worker holds
        self.draining: set[int] = set()  # held but no longer read: released once their requests are done
        self.fresh: set[int] = set()     # taken, but their pending requests not claimed yet: not read
        self.renewed_at: dict[int, float] = {}  # shard -> monotonic time its lease was last set (sent)
        self.ttl_s = ttl_s
        self._free_before: set[int] = set()
        self._raise = redis.register_script(_RAISE_LUA)
        self._renew = redis.register_script(_RENEW_LUA)
        self._take = redis.register_script(_TAKE_LUA)
        self._release = redis.register_script(_RELEASE_LUA)

    def reading(self, margin_s: float = 0.0) -> list[int]:
        """The shards to read new requests from: held, and whose lease still runs ``margin_s`` from
        now (a worker that stalled past its TTL stops reading before its next round finds out)."""
        deadline = time.monotonic() + margin_s - self.ttl_s
        return sorted(k for k in self.held - self.draining - self.fresh if self.renewed_at.get(k, -1e18) > deadline)

    def streams(self, margin_s: float = 0.0) -> list[str]:
        """The streams to read: the shared one, then the shards this worker reads."""
        return [self.keys.requests, *(self.keys.request_shard(k) for k in self.reading(margin_s))]

    def _preference(self, shard: int) -> int:
        # Rendezvous order: a worker that restarts under its name tends to get its shards back.
        return zlib.crc32(f"{self.name}/{shard}".encode())

    async def round(self) -> set[int]:
        """Renew, take and hand over leases as described above; returns the shards just taken."""
        self.count = max(self.configured, int(await self._raise(keys=[self.keys.shard_count], args=[self.configured])))
        if self.count <= 1:
            return set()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(self.keys.workers, self.name)
            pipe.smembers(self.keys.workers)
            pipe.mget([self.keys.shard_lease(k) for k in range(self.count)])
            _, members, holders = await pipe.execute()
        live = await self._live(set(members), {holder for holder in holders if holder})
        mine = {k for k, holder in enumerate(holders) if holder == self.name} - self.held
        if mine:  # held under this name before a restart: read again once their pending requests are claimed
            log.info("worker %s: holds shard(s) %s from its previous run", self.name, _list(mine))
            self.held |= mine
            self.fresh |= mine
        await self._renew_held()
        others = {k: holder for k, holder in enumerate(holders) if holder and k not in self.held}
        holdings = dict.fromkeys(live, 0)
        holdings[self.name] = len(self.held)
        for holder in others.values():
            if holder in holdings:
                holdings[holder] += 1
        shares = plan(self.count, holdings)
        share = shares[self.name]

        owned = self.held - self.draining
        for shard in sorted(self.draining, key=self._preference):  # short again: keep what is still ours
            if len(owned) >= share:
                break
            self.draining.discard(shard)
            owned.add(shard)
        free = {k for k in range(self.count) if k not in self.held and others.get(k) not in live}
        orphans = sorted(free & self._free_before, key=self._preference)
        rest = sorted(free - self._free_before, key=self._preference)
        want = max(share - len(owned), len(orphans))
        taken: set[int] = set()
        if want > 0 and free:
            order = orphans + rest
            sent = time.monotonic()
            indexes = await self._take(keys=[self.keys.shard_lease(k) for k in order],
                                       args=[self.name, self.ttl_ms, want, *(others.get(k, "") for k in order)])
            taken = {order[i - 1] for i in indexes}
            stolen = sorted({others[k] for k in taken if k in others})
            if stolen:
                log.warning("worker %s: took shard(s) %s from stopped worker(s) %s", self.name, _list(taken),
                            ", ".join(stolen))
            elif taken:
                log.info("worker %s: took shard(s) %s", self.name, _list(taken))
            self.held |= taken
            self.fresh |= taken
            self.renewed_at.update(dict.fromkeys(taken, sent))
            owned |= taken
        self._free_before = free - taken
        needed = any(holdings[name] < shares[name] for name in live if name != self.name)
        if len(owned) > share and needed:  # a worker joined: hand over the least preferred, once drained
            handed = sorted(owned, key=self._preference)[share:]
            self.draining.update(handed)
            self.fresh.difference_update(handed)
            log.info("worker %s: handing shard(s) %s over (share %d of %d)", self.name, _list(handed),
                     share, self.count)
        return taken | mine

    async def _live(self, members: set[str], holders: set[str]) -> set[str]:
        """This worker and the other members and lease holders whose heartbeat exists (the one test
        of liveness, as for reclaiming requests); members without one leave the set."""
        others = sorted((members | holders) - {self.name})
        if not others:
            return {self.name}
        async with self.redis.pipeline(transaction=False) as pipe:
            for other in others:
                pipe.exists(self.keys.heartbeat("worker", other))
            alive = {other for other, exists in zip(others, await pipe.execute(), strict=True) if exists}
        dead = sorted(members - alive - {self.name})
        if dead:
            await self.redis.srem(self.keys.workers, *dead)
        return {self.name} | alive

    async def _renew_held(self) -> None:
        if not self.held:
            return
        held = sorted(self.held)
        sent = time.monotonic()  # the lease runs at least the TTL from here
        kept = await self._renew(keys=[self.keys.shard_lease(k) for k in held], args=[self.name, self.ttl_ms])
        lost = {k for k, ok in zip(held, kept, strict=True) if not ok}
        self.renewed_at.update(dict.fromkeys(set(held) - lost, sent))
        if lost:
            # Expired while this worker stalled, and maybe taken by another: stop reading them.
            log.warning("worker %s: lost shard lease(s) %s", self.name, _list(lost))
            self.held -= lost
            self.draining -= lost
            self.fresh -= lost

    async def release_drained(self, busy: set[int]) -> None:
        """Delete the leases of shards handed over whose requests are all done (none in ``busy``)."""
        done = sorted(self.draining - busy)
        if not done:
            return
        await self._release(keys=[self.keys.shard_lease(k) for k in done], args=[self.name])
        self.held.difference_update(done)
        self.draining.difference_update(done)
        log.info("worker %s: handed shard(s) %s over", self.name, _list(done))

    async def release_all(self) -> None:
        """On a clean stop: free every lease at once (no one waits for the TTL) and leave the set."""
        if self.held:
            await self._release(keys=[self.keys.shard_lease(k) for k in sorted(self.held)], args=[self.name])
        self.held.clear()
        self.draining.clear()
        self.fresh.clear()
        if self.count > 1:
            await self.redis.srem(self.keys.workers, self.name)


def _list(shards) -> str:
    return ",".join(str(k) for k in sorted(shards))
