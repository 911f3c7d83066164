"""Where a guest's message stands in the worker's queue, for the "you are number N in line" notice.

A request waits on a request stream (``doppel.relay.Keys.request_streams``: the shared one and
the shards) until a worker has answered it: workers ack and delete a request in the commit that
writes its reply (``inference/commit.py``). So the streams hold exactly the requests not
answered yet, and since stream ids are arrival times, a request's place in line is one more than
the requests that came before it on any stream (the first ones are being written).

``Line`` follows the guest DMs whose message went to the worker (``watch``). Twice a second, while
there are any, one script call reads every stream inside Redis and returns only the position of
the first request of each of this bot's channels. A channel at position 2 or later is told its
place whenever it changes, as a ``queue`` event::

    {"type": "queue", "channel": "web:dm:guest-...", "position": 3,
     "message": "The clone is busy: you are number 3 in line."}

Once it is first in line or answered, the notice is cleared (position 0, no message) and the
channel is no longer followed.

Tested in ``tests/bot/webchat/test_guests.py`` (the notice under load).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from doppel.relay import Keys

log = logging.getLogger(__name__)

FIRST_NOTICE = 2  # the first in line is being answered: the typing indicator says enough

# KEYS: the request streams; ARGV: the bot, how many entries to read per stream at most.
# Returns {channel, position, ...}: each of the bot's channels with the 1-based place of its first
# request among all the requests on the streams, in arrival (stream id) order.
_POSITIONS_LUA = """
local function before(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, bm = tonumber(am), tonumber(bm)
  if am ~= bm then return am < bm end
  return tonumber(as) < tonumber(bs)
end
local ids, first = {}, {}
for _, stream in ipairs(KEYS) do
  for _, entry in ipairs(redis.call('XRANGE', stream, '-', '+', 'COUNT', tonumber(ARGV[2]))) do
    ids[#ids + 1] = entry[1]
    local fields, bot, channel = entry[2], nil, nil
    for j = 1, #fields, 2 do
      if fields[j] == 'bot' then bot = fields[j + 1] elseif fields[j] == 'channel' then channel = fields[j + 1] end
    end
    if bot == ARGV[1] and channel and (not first[channel] or before(entry[1], first[channel])) then
      first[channel] = entry[1]
    end
  end
end
table.sort(ids, before)
local place = {}
for i, id in ipairs(ids) do place[id] = i end
local out = {}
for channel, id in pairs(first) do
  out[#out + 1] = channel
  out[#out + 1] = place[id]
end
return out
"""


class Line:
    def __init__(self, redis, keys: Keys, bot: str, shards: int, publish: Callable[[str, dict], None], *,
                 interval_s: float = 0.5, max_scan: int = 5000):
        self.keys = keys
        self.bot = bot
        self.shards = shards
        self.publish = publish          # (channel, event): to the pages that see the channel
        self.interval_s = interval_s
        self.max_scan = max_scan        # entries read per stream at most: a longer line reads shorter
        self.watched: dict[str, int] = {}  # channel -> the position its page was last told (0: none)
        self._renewed: set[str] = set()    # watched again since the current read began
        self._script = redis.register_script(_POSITIONS_LUA)

    def watch(self, channel: str) -> None:
        """A message in ``channel`` went to the worker (its request is on the stream now)."""
        self.watched.setdefault(channel, 0)
        self._renewed.add(channel)

    def forget(self, channel: str) -> None:
        self.watched.pop(channel, None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if not self.watched:
                continue
            try:
                await self.scan()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # boundary: Redis restarting; the next round tells the pages
                log.warning("web: cannot read the request queue (%s)", exc)

    async def scan(self) -> None:
        # Only the channels followed before the read: one watched (again) during it may have been
        # queued after the stream was read, and must not be taken for answered.
        channels = list(self.watched)
        self._renewed.clear()
        streams = self.keys.request_streams(self.shards)
        flat = await self._script(keys=streams, args=[self.bot, self.max_scan])
        found = {channel: int(position) for channel, position in zip(flat[::2], flat[1::2], strict=True)}
        for channel in channels:
            told = self.watched.get(channel)
            if told is None:  # forgotten while we read
                continue
            position = found.get(channel, 0)
            if position >= FIRST_NOTICE and position != told:
                self.watched[channel] = position
                self._tell(channel, position)
            elif position < FIRST_NOTICE and told:
                self.watched[channel] = 0
                self._tell(channel, 0)
            if not position and channel not in self._renewed:
                del self.watched[channel]

    def _tell(self, channel: str, position: int) -> None:
        text = f"The clone is busy: you are number {position} in line." if position else ""
        self.publish(channel, {"type": "queue", "channel": channel, "position": position, "message": text})
