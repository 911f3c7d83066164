"""The web chat in a real browser: Debian's headless Chromium, driven by Playwright, against the
real web chat, core, Redis and an echo worker that takes its time (so typing is visible).

Screenshots are kept as test artifacts in ``$DOPPEL_ARTIFACTS_DIR`` (default
``build/test-artifacts/``): ``web_chat.png`` (the owner's DM with the clone panel) and
``web_chat_group.png`` (the group with the scripted friends).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("playwright")
from bot_helpers import FAST_BOT, running
from playwright.async_api import async_playwright, expect
from web_helpers import serving_web

from doppel.registry import Card, Registry
from inference.engine import EchoEngine

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("DOPPEL_ARTIFACTS_DIR") or ROOT / "build" / "test-artifacts")

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="needs Debian's chromium (apt-get install chromium; scripts/setup.sh all)")


def publish_evaluated_adapter(registry: Registry, source: Path) -> None:
    """A published adapter card with scores and a real likeness chart, for the side panel."""
    from training.sft.charts import bar_chart

    source.mkdir()
    (source / "adapter_config.json").write_text("{}")
    note = bar_chart(source / "eval.png", "held-out style; perplexity base 9.50 -> adapter 6.25 (ratio 0.658)",
                     ["length / owner's", "messages per burst", "emoji rate"],
                     {"owner": [1.0, 1.8, 0.3], "adapter": [0.9, 1.6, 0.25], "base": [2.4, 1.0, 0.02]})
    assert note is None, note
    evaluation = {"perplexity": {"base": 9.5, "adapter": 6.25, "ratio": 0.658}, "likeness": 0.91,
                  "publishable": True, "heldout_samples": 40, "style_distance": {"adapter": 0.25, "base": 0.8},
                  "phrase_rate": {"owner": 0.3, "adapter": 0.22, "base": 0.01}, "ai_ism_rate": 0.0}
    registry.publish(source, Card(name="alex", version=0, base_model="smollm2", rank=8, eval=evaluation,
                                  data={"samples": 1234}, notes="preset demo, 300 steps"))


async def test_chat_in_a_real_browser(make_settings, make_worker, redis_url, sync_redis, keys, tmp_path):
    settings = make_settings(bot={**FAST_BOT, "owner_name": "Alex"},
                             web={"port": 0, "owner_name": "Jordan", "friends": True, "friend_interval_s": 0.3,
                                  "friends_max_messages": 8, "friends_seed": 3})
    publish_evaluated_adapter(Registry(settings.adapters_root(), sync_redis, keys), tmp_path / "adapter")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with serving_web(settings, redis_url) as platform, \
            running(make_worker(redis_url, engine=EchoEngine(delay_ms=1200))), async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.goto(platform.owner_url)
            await expect(page.locator("#app")).to_be_visible()
            assert "key=" not in page.url, "the owner key leaves the address bar"
            await expect(page.locator("#me")).to_contain_text("Jordan")
            await expect(page.locator("#me")).to_contain_text("owner")
            await expect(page.locator("#title")).to_have_text("Alex")

            await page.locator("#input").fill("hey Alex!\n\nare you around tonight?")
            await page.locator("#input").press("Enter")
            mine = page.locator(".msg.mine .text")
            await expect(mine).to_have_text(["hey Alex!\n\nare you around tonight?"])
            await expect(page.locator("#typing")).to_be_visible()
            await expect(page.locator("#typing-text")).to_have_text("Alex is typing…")
            clone = page.locator(".msg.kind-clone .text")
            await expect(clone).to_have_text(["echo: hey Alex!", "echo: are you around tonight?"], timeout=10_000)
            await expect(page.locator("#typing")).to_be_hidden()

            await page.locator("#input").fill("/clone st")
            await expect(page.locator("#suggest")).to_contain_text("/clone status")
            await page.locator("#input").press("Tab")
            await expect(page.locator("#input")).to_have_value("/clone status")
            await page.locator("#input").press("Enter")
            await expect(clone.nth(2)).to_contain_text("paused: no", timeout=10_000)
            await expect(clone.nth(2)).to_contain_text("adapter here: alex@v1")

            await expect(page.locator("#adapter .ref")).to_contain_text("alex@v1")
            await expect(page.locator("#adapter")).to_contain_text("smollm2")
            await expect(page.locator("#adapter .scores")).to_contain_text("6.25 / 9.5")
            chart = page.locator("#chart img")
            await expect(chart).to_be_visible()
            assert await chart.evaluate("img => img.complete && img.naturalWidth > 100")
            await page.screenshot(path=str(ARTIFACTS / "web_chat.png"))

            await page.locator("#groups li", has_text="friends").click()
            await expect(page.locator("#title")).to_have_text("# friends")
            await expect(page.locator(".msg.kind-friend")).to_have_count(8, timeout=15_000)
            await page.screenshot(path=str(ARTIFACTS / "web_chat_group.png"))
        finally:
            await browser.close()
    for name in ("web_chat.png", "web_chat_group.png"):
        assert (ARTIFACTS / name).stat().st_size > 20_000, f"{name} is a real screenshot"


async def test_a_guest_sees_their_place_in_line_and_is_told_when_let_go(make_settings, redis_url):
    settings = make_settings(bot=FAST_BOT, web={"port": 0, "friends": False, "guest_idle_s": 2.0})
    async with serving_web(settings, redis_url) as platform, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            await page.goto(platform.url)
            await page.locator("#join-name").fill("Ann")
            await page.locator("#join-name").press("Enter")
            await expect(page.locator("#me")).to_contain_text("Ann")
            dm = next(iter(platform.guests)).id
            platform.line._tell("web:dm:" + dm, 3)  # what the line says while others are answered first
            await expect(page.locator("#queue")).to_have_text("The clone is busy: you are number 3 in line.")
            platform.line._tell("web:dm:" + dm, 0)
            await expect(page.locator("#queue")).to_be_hidden()
            await expect(page.locator("#join")).to_be_visible(timeout=10_000)  # two silent seconds: let go
            await expect(page.locator("#join-error")).to_contain_text("You were away for a while")
            await expect(page.locator("#join-name")).to_have_value("Ann")
        finally:
            await browser.close()
