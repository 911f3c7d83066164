"""The adapter registry: versions never rewritten, routes, rollback, names, events."""

from __future__ import annotations

import json

import pytest

from doppel.errors import InputError
from doppel.registry import AdapterRef, Card, Registry


@pytest.fixture
def registry(tmp_path, sync_redis, keys):
    return Registry(tmp_path / "adapters", sync_redis, keys)


@pytest.fixture
def adapter_dir(tmp_path):
    def make(marker: str):
        folder = tmp_path / f"src-{marker}"
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "marker": marker}))
        (folder / "adapter_model.safetensors").write_bytes(marker.encode())
        return folder
    return make


def card(name="me", **values):
    return Card(name=name, version=0, base_model="tiny", rank=8, **values)


def events(sync_redis, keys):
    return [(f["kind"], f.get("adapter"), f.get("channel")) for _, f in sync_redis.xrange(keys.registry_events)]


def test_publishing_again_makes_a_new_version_and_never_rewrites(registry, adapter_dir):
    first = registry.publish(adapter_dir("a"), card())
    second = registry.publish(adapter_dir("b"), card(eval={"ppl_ratio": 0.8}))
    assert (str(first), str(second)) == ("me@v1", "me@v2")
    assert (registry.path(first) / "adapter_model.safetensors").read_bytes() == b"a"
    assert registry.card(second).eval == {"ppl_ratio": 0.8}
    assert [c.version for c in registry.list()] == [1, 2]


def test_first_publish_becomes_the_default_and_later_ones_need_use(registry, adapter_dir, sync_redis, keys):
    registry.publish(adapter_dir("a"), card())
    registry.publish(adapter_dir("b"), card())
    assert registry.route() == AdapterRef("me", 1)
    registry.use("me")
    assert registry.route() == AdapterRef("me", 2)
    assert events(sync_redis, keys) == [("publish", "me@v1", None), ("use", "me@v1", ""),
                                        ("publish", "me@v2", None), ("use", "me@v2", "")]


def test_channel_routes_override_the_default_and_rollback_restores(registry, adapter_dir):
    registry.publish(adapter_dir("a"), card("chat"))
    registry.publish(adapter_dir("b"), card("articles"))
    registry.use("articles", channel="discord:9")
    assert registry.route("discord:9") == AdapterRef("articles", 1)
    assert registry.route("discord:1") == AdapterRef("chat", 1)
    registry.use("articles@v1")
    assert registry.rollback() == AdapterRef("chat", 1)
    assert registry.route() == AdapterRef("chat", 1)
    with pytest.raises(InputError, match="nothing to roll back"):
        registry.rollback()


@pytest.mark.parametrize("name", ["../etc", "a/b", "Has Space", "", "UPPER", "x" * 65, ".hidden"])
def test_bad_names_are_refused(registry, adapter_dir, name):
    with pytest.raises(InputError, match="not allowed"):
        registry.publish(adapter_dir("a"), card(name))
    assert not any(registry.root.glob("**/card.json")) if registry.root.exists() else True


def test_routed_adapters_cannot_be_removed_and_missing_ones_are_named(registry, adapter_dir):
    ref = registry.publish(adapter_dir("a"), card())
    with pytest.raises(InputError, match="in use"):
        registry.remove(ref)
    with pytest.raises(InputError, match="no adapter named 'nope'"):
        registry.use("nope")
    with pytest.raises(InputError, match="not a peft adapter"):
        registry.publish(registry.root, card("other"))
