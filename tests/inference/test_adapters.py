"""The worker's adapter set: one load per version under concurrency, retirement, eviction."""

from __future__ import annotations

import asyncio
import json

from doppel.registry import AdapterRef, version_dir
from inference.adapters import AdapterSet


class StubEngine:
    name = "stub"

    def __init__(self):
        self.loaded: dict[int, str] = {}
        self.adds = 0

    async def add_adapter(self, adapter):
        self.adds += 1
        await asyncio.sleep(0.01)  # a load takes time: concurrent requests pile up meanwhile
        self.loaded[adapter.int_id] = adapter.key

    async def remove_adapter(self, adapter):
        del self.loaded[adapter.int_id]


def make_version(root, name, version):
    path = version_dir(root, AdapterRef(name, version))
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": 8}))


async def test_concurrent_first_requests_load_a_version_once(tmp_path):
    make_version(tmp_path, "me", 1)
    engine = StubEngine()
    adapters = AdapterSet(engine, tmp_path)
    got = await asyncio.gather(*(adapters.acquire(AdapterRef("me", 1)) for _ in range(5)))
    assert engine.adds == 1 and len({a.int_id for a in got}) == 1
    for adapter in got:
        await adapters.release(adapter)
    assert engine.loaded == {got[0].int_id: "me@v1"}


async def test_a_new_version_retires_the_old_after_its_requests_finish(tmp_path):
    make_version(tmp_path, "me", 1)
    make_version(tmp_path, "me", 2)
    engine = StubEngine()
    adapters = AdapterSet(engine, tmp_path)
    old = await adapters.acquire(AdapterRef("me", 1))
    new = await adapters.acquire(AdapterRef("me", 2))
    assert new.int_id != old.int_id
    await adapters.release(new)
    assert sorted(engine.loaded.values()) == ["me@v1", "me@v2"], "v1 still has a request in flight"
    await adapters.release(old)
    assert list(engine.loaded.values()) == ["me@v2"]
    again = await adapters.acquire(AdapterRef("me", 1))  # rollback: a fresh id, never a reused one
    assert again.int_id not in (old.int_id, new.int_id)
