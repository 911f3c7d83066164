"""The adapters a worker has loaded into its engine, by version, with in-flight counts.

A request acquires the adapter its channel is routed to and releases it when done. The first
acquire of a version loads it under a fresh integer id; loading a newer version of the same name
retires the older ones, which are removed from the engine once their in-flight requests finish.
So a publish/use/rollback takes effect for the next request, no request waits on a reload, and
no id is ever reused for different weights.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from pathlib import Path

from doppel.errors import DoppelError
from doppel.registry import AdapterRef, version_dir
from inference.backends.base import LoadedAdapter, ModelBackend

log = logging.getLogger(__name__)


class AdapterSet:
    def __init__(self, engine: ModelBackend, root: Path, *, max_loaded: int = 8):
        self.engine = engine
        self.root = Path(root)
        self.max_loaded = max_loaded
        self._ids = itertools.count(1)
        self._loaded: dict[str, LoadedAdapter] = {}
        self._in_flight: Counter[str] = Counter()
        self._last_used: dict[str, float] = {}
        self._retired: set[str] = set()
        # key -> (why it did not load, when): not retried on every request, but retried after a
        # while, since on a shared volume the files may show up after the route does.
        self._failed: dict[str, tuple[str, float]] = {}
        self.retry_failed_s = 30.0
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def loaded(self) -> list[str]:
        return sorted(self._loaded)

    async def acquire(self, ref: AdapterRef) -> LoadedAdapter:
        """The loaded adapter for ``ref``, loading it if needed; raises DoppelError if it cannot load."""
        key = str(ref)
        # One load per version even when many requests for a new version arrive at once, and the
        # count taken under the same lock, so a concurrent release cannot evict it in between.
        async with self._locks.setdefault(key, asyncio.Lock()):
            adapter = self._loaded.get(key) or await self._load(ref)
            self._in_flight[key] += 1
        self._last_used[key] = time.monotonic()
        return adapter

    async def _load(self, ref: AdapterRef) -> LoadedAdapter:
        key = str(ref)
        if key in self._failed:
            reason, when = self._failed[key]
            if time.monotonic() - when < self.retry_failed_s:
                raise DoppelError(reason)
            del self._failed[key]
        path = version_dir(self.root, ref)
        if not (path / "adapter_config.json").is_file():
            self._fail(key, f"adapter {key} is not in the registry at {path}")
        adapter = LoadedAdapter(key=key, int_id=next(self._ids), path=path)
        try:
            await self.engine.add_adapter(adapter)
        except DoppelError as exc:
            self._fail(key, str(exc))
        self._loaded[key] = adapter
        log.info("loaded adapter %s as id %d", key, adapter.int_id)
        self._retired |= {k for k in self._loaded if k != key and k.split("@")[0] == ref.name}
        return adapter

    def _fail(self, key: str, reason: str):
        self._failed[key] = (reason, time.monotonic())
        raise DoppelError(reason)

    async def release(self, adapter: LoadedAdapter) -> None:
        self._in_flight[adapter.key] -= 1
        idle = [k for k in self._loaded if self._in_flight[k] <= 0]
        doomed = [k for k in idle if k in self._retired]
        over = len(self._loaded) - len(doomed) - self.max_loaded
        if over > 0:
            doomed += sorted((k for k in idle if k not in doomed), key=self._last_used.get)[:over]
        for key in doomed:
            old = self._loaded.pop(key)
            self._retired.discard(key)
            del self._in_flight[key]
            await self.engine.remove_adapter(old)
            log.info("removed adapter %s (id %d)", key, old.int_id)
