"""doppel/redis_client.py: the one factory of Redis clients, against the real test server."""

from __future__ import annotations

from doppel.redis_client import HEALTH_CHECK_INTERVAL_S, async_client, sync_client


async def test_async_clients_decode_text_and_check_their_connection(redis_url):
    client = async_client(redis_url)
    try:
        await client.set("doppel:test:text", "米娅 ✨")
        assert await client.get("doppel:test:text") == "米娅 ✨"
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["health_check_interval"] == HEALTH_CHECK_INTERVAL_S
    finally:
        await client.aclose()


def test_sync_clients_decode_text_and_take_overrides(redis_url):
    client = sync_client(redis_url)
    raw = sync_client(redis_url, decode_responses=False, socket_timeout=1.5)
    try:
        client.set("doppel:test:text", "ngl 💀")
        assert client.get("doppel:test:text") == "ngl 💀"
        assert raw.get("doppel:test:text") == "ngl 💀".encode()
        assert raw.connection_pool.connection_kwargs["socket_timeout"] == 1.5
    finally:
        client.close()
        raw.close()
