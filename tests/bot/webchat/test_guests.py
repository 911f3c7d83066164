"""A web chat page shared with the public holds up: a bounded number of live guests, idle guests
let go with every structure they held (sender, lock, tasks, backlog, Redis keys), rate limits
that refuse before anything is recorded, X-Forwarded-For believed from trusted proxies only, and
a guest whose message waits for the clone told their place in line.

Against the real web chat, core, relay and Redis, with an in-process echo worker, as in
``test_platform.py``.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest
from bot_helpers import eventually, running
from webchat_pages import page

from bot.webchat.guests import Limit, Windows, client_ip
from doppel.history import load
from inference.engine import EchoEngine


async def test_guests_beyond_max_guests_are_told_the_chat_is_full(run_web):
    async with run_web(web={"max_guests": 2}) as platform:
        async with page(platform, name="Ann", guest="ann-token-1234"), page(platform, name="Bo"):
            async with page(platform) as cy:
                answer = await cy.join(name="Cy", guest="cy-token-1234")
                assert answer["type"] == "error"
                assert answer["message"] == "the chat is full right now (2 guests); try again in a few minutes"
            async with page(platform, name="Ann", guest="ann-token-1234") as again:
                assert again.me["kind"] == "guest", "a guest who is here may open another tab"
            async with page(platform, key=platform.owner_key) as owner:
                assert owner.me["kind"] == "owner", "the owner is never counted as a guest"
        # Ann and Bo closed their pages: a newcomer takes the place of the one who left first.
        async with page(platform, name="Cy", guest="cy-token-1234") as cy:
            assert cy.me["kind"] == "guest"
        assert len(platform.guests) == 2


def _guest_state(platform, guests: list[tuple[str, str]]) -> dict[str, int]:
    """How many per-guest structures the web chat and its core hold for ``guests`` (id, DM channel)."""
    core = platform.core
    names = [task.get_name() for task in asyncio.all_tasks()]
    return {
        "senders": sum(dm in core._senders for _, dm in guests),
        "locks": sum(dm in core._locks for _, dm in guests),
        "chat types": sum(dm in core._chat_types for _, dm in guests),
        "rate windows": sum(f"web:{uid}" in core.triggers._user_requests for uid, _ in guests),
        "backlogs": sum(dm in platform._guest_dms for _, dm in guests),
        "tasks": sum(any(uid in name for name in names) for uid, _ in guests),
        "live": sum(uid in getattr(platform, "guests", ()) for uid, _ in guests),
    }


async def _redis_keys(aredis, guests: list[tuple[str, str]]) -> int:
    found = 0
    for uid, _ in guests:
        found += len([key async for key in aredis.scan_iter(match=f"*{uid}*")])
    return found


async def test_an_idle_guest_leaves_nothing_behind(run_web, make_worker, redis_url, aredis, keys):
    async with run_web(web={"guest_idle_s": 1.5}) as platform, running(make_worker(redis_url)):
        await asyncio.sleep(0.2)
        baseline = len(asyncio.all_tasks())
        async with contextlib.AsyncExitStack() as stack:
            pages, guests = [], []
            for n in range(3):
                guest = await stack.enter_async_context(page(platform, name=f"Guest {n}"))
                dm = guest.channel("dm")
                await guest.send(dm, f"hi from {n}")
                await eventually(lambda g=guest, d=dm, n=n: g.texts(d, "clone") == [f"echo: hi from {n}"],
                                 what="the reply")
                pages.append(guest)
                guests.append((guest.me["id"], dm))
            held = _guest_state(platform, guests)
            assert held == {"senders": 3, "locks": 3, "chat types": 3, "rate windows": 3, "backlogs": 3,
                            "tasks": 3, "live": 3}, held
            assert await _redis_keys(aredis, guests) == 6, "each DM's history and its sequence counter"
            assert all([await load(aredis, keys, dm) for _, dm in guests])
            await eventually(lambda: all(any(e["type"] == "bye" for e in p.events) for p in pages), timeout=8,
                             what="the idle guests' pages told they were let go")
            await eventually(lambda: all(p.ws.closed for p in pages), what="their sockets closed")
        await eventually(lambda: not any(_guest_state(platform, guests).values()), timeout=8,
                         what="every per-guest structure gone")
        assert await _redis_keys(aredis, guests) == 0
        assert not any([await load(aredis, keys, dm) for _, dm in guests])
        await eventually(lambda: len(asyncio.all_tasks()) <= baseline, what="the task count back to before")


@pytest.mark.parametrize("limits", [{"web": {"rate_limit": 2}}, {"bot": {"user_rate_limit": 2}}],
                         ids=["web rate_limit", "bot user_rate_limit"])
async def test_the_rate_limit_refuses_before_the_message_is_recorded(run_web, make_worker, redis_url, aredis, keys,
                                                                     limits):
    async with run_web(**limits) as platform, running(make_worker(redis_url)), \
            page(platform, name="Ann", guest="ann-token-1234") as ann:
        dm = ann.channel("dm")
        for text in ("one", "two"):
            assert (await ann.answer(await ann.send(dm, text)))["type"] == "sent"
        await eventually(lambda: len(ann.texts(dm, "clone")) == 2, what="two replies")
        refused = await ann.answer(await ann.send(dm, "three"))
        assert (refused["type"], refused["message"]) == \
            ("error", "slow down: at most 2 messages a minute; try again in a minute")
        async with page(platform, name="Ann", guest="ann-token-1234") as other_tab:
            again = await other_tab.answer(await other_tab.send(dm, "three, from another tab"))
            assert again["type"] == "error", "a guest's tabs share one budget"
        await asyncio.sleep(0.3)
        assert ann.texts(dm, "guest") == ["one", "two"], "the refused message was not shown either"
        assert ann.texts(dm, "clone") == ["echo: one", "echo: two"]
    assert [t.turn.text for t in await load(aredis, keys, dm)] == ["one", "two"], "history length unchanged"


@pytest.mark.parametrize("trusted, shared", [(["127.0.0.1"], False), (["10.9.9.9"], True)],
                         ids=["from a trusted proxy", "from an untrusted peer"])
async def test_x_forwarded_for_is_believed_from_trusted_proxies_only(run_web, trusted, shared):
    web = {"public": True, "trusted_proxies": trusted, "ip_rate_limit": 2, "rate_limit": 10}
    async with run_web(web=web) as platform, \
            page(platform, headers={"X-Forwarded-For": "203.0.113.5"}, name="Ann") as ann, \
            page(platform, headers={"X-Forwarded-For": "198.51.100.7"}, name="Bo") as bo:
        group = ann.channel("group")
        for text in ("one", "two"):
            assert (await ann.answer(await ann.send(group, text)))["type"] == "sent"
        third = await ann.answer(await ann.send(group, "three"))
        assert (third["type"], third["message"]) == \
            ("error", "slow down: too many messages from your address; try again in a minute")
        other = await bo.answer(await bo.send(group, "from another address"))
        assert other["type"] == ("error" if shared else "sent"), other


def test_client_ip_reads_the_forwarded_chain_only_behind_trusted_proxies():
    trusted = ("127.0.0.1", "10.0.0.0/8")
    assert client_ip("127.0.0.1", "203.0.113.5", trusted) == "203.0.113.5"
    assert client_ip("127.0.0.1", "198.51.100.1, 203.0.113.5, 10.1.2.3", trusted) == "203.0.113.5", \
        "the right-most address no trusted proxy added: what the client put first can be forged"
    assert client_ip("192.0.2.9", "203.0.113.5", trusted) == "192.0.2.9", "an untrusted peer's header is ignored"
    assert client_ip("127.0.0.1", "not an address", trusted) == "127.0.0.1"
    assert client_ip("127.0.0.1", "", trusted) == "127.0.0.1"
    assert client_ip("127.0.0.1", "10.0.0.1, 127.0.0.1", trusted) == "10.0.0.1", "all proxies: the first"
    assert client_ip("::1", "2001:db8::1", ("::1",)) == "2001:db8::1"


async def test_a_public_page_answers_its_proxy_host_but_not_other_sites(run_web):
    async with run_web(web={"public": True, "ip_max_pages": 1}) as platform, aiohttp.ClientSession() as http:
        async with http.get(platform.url, headers={"Host": "clone.example.com"}) as response:
            assert response.status == 200, "behind a proxy the Host is the public name"
        async with http.get(platform.url, headers={"Host": "clone.example.com",
                                                   "Origin": "https://clone.example.com"}) as response:
            assert response.status == 200
        async with http.get(platform.url + "ws", headers={"Host": "clone.example.com",
                                                          "Origin": "https://evil.example"}) as response:
            assert response.status == 403
        forwarded = {"X-Forwarded-For": "203.0.113.5"}
        async with page(platform, headers=forwarded, name="Ann"), page(platform, headers=forwarded) as second:
            answer = await second.join(name="Ann again", guest="second-token-1234")
            assert (answer["type"], answer["message"]) == \
                ("error", "too many pages are open from your address; close one and reload")
        async with page(platform, headers=forwarded, name="Ann") as alone:
            assert alone.me["kind"] == "guest", "the address's page was given back when it closed"


async def test_a_guest_waiting_for_the_clone_is_told_their_place_in_line(run_web, make_worker, redis_url):
    worker = make_worker(redis_url, engine=EchoEngine(delay_ms=400), concurrency=1)
    async with run_web() as platform, running(worker), contextlib.AsyncExitStack() as stack:
        guests = [await stack.enter_async_context(page(platform, name=f"Guest {n}")) for n in range(4)]
        for n, guest in enumerate(guests):
            await guest.send(guest.channel("dm"), f"hello {n}")
        await eventually(lambda: all(g.texts(g.channel("dm"), "clone") for g in guests), timeout=15,
                         what="every guest's reply")
        last = guests[-1]
        await eventually(lambda: [e for e in last.events if e["type"] == "queue"][-1]["position"] == 0,
                         what="the notice cleared once the reply came")
    notices = [e for e in last.events if e["type"] == "queue"]
    waiting = [e for e in notices if e["position"]]
    assert waiting and waiting[0]["position"] >= 3, notices
    assert waiting[0]["message"] == f"The clone is busy: you are number {waiting[0]['position']} in line."
    assert [e["position"] for e in waiting] == sorted((e["position"] for e in waiting), reverse=True)
    assert all(e["channel"] == last.channel("dm") for e in notices)
    first = [e for e in guests[0].events if e["type"] == "queue" and e["position"] > 1]
    assert not first, "the first in line is being answered: typing shows, no notice"


def test_windows_are_taken_all_or_none_and_swept_when_spent():
    now = [0.0]
    windows = Windows(clock=lambda: now[0])
    roomy, tight = Limit("roomy", 3, 10.0, "roomy: {wait}"), Limit("tight", 1, 60.0, "tight: wait {wait}")
    assert windows.take([roomy, tight]) is None
    assert windows.take([roomy, tight]) == "tight: wait a minute"
    assert windows.take([roomy]) is None and windows.take([roomy]) is None, "the refusal took nothing from roomy"
    assert windows.take([roomy]) == "roomy: a few seconds"
    now[0] = 10.0
    assert windows.take([roomy]) is None
    now[0] = 100.0
    windows.sweep()
    assert len(windows) == 0, "spent windows are dropped: a flood of addresses leaves nothing behind"


async def test_a_crowd_sending_at_once_queues_instead_of_failing(run_web, make_worker, redis_url):
    """More messages at the same instant than the Redis pool has connections (100): they wait their
    turn for the core, none fails with 'the message could not be delivered'."""
    crowd = 130
    async with run_web(web={"max_guests": crowd}) as platform, running(make_worker(redis_url)), \
            contextlib.AsyncExitStack() as stack:
        guests = await asyncio.gather(*(stack.enter_async_context(page(platform, name=f"Guest {n}"))
                                        for n in range(crowd)))
        nonces = await asyncio.gather(*(g.send(g.channel("dm"), "all at once") for g in guests))
        answers = await asyncio.gather(*(g.answer(nonce) for g, nonce in zip(guests, nonces, strict=True)))
        failed = [a["message"] for a in answers if a["type"] != "sent"]
        assert not failed, f"{len(failed)} of {crowd} failed: {failed[:3]}"
        await eventually(lambda: all(g.texts(g.channel("dm"), "clone") for g in guests), timeout=30,
                         what="every reply")
