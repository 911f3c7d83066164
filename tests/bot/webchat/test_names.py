"""Names on the web chat: normalized (NFKC, format characters out, whitespace collapsed) and
refused, with one clear line on the page, when they imitate the owner, the clone, a scripted
friend or a guest who is here now: a zero-width space, a Cyrillic or Greek letter, full-width
letters, a right-to-left override, look-alike digits and marks.

The skeletons and display names on their own, then through the real page socket.
"""

from __future__ import annotations

import pytest
from webchat_pages import page

from bot.webchat.names import display_name, skeleton
from doppel.errors import InputError

TRICKS = {
    "zero-width space": "Mi\u200ba",
    "Cyrillic а": "Mi\u0430",
    "full-width": "\uff2d\uff49\uff41",
    "RTL override": "\u202eaiM",
    "Greek iota and combining dot": "M\u03b9\u0307a",
    "soft hyphen and word joiner": "M\u00adi\u2060a",
}


@pytest.mark.parametrize("trick", TRICKS)
async def test_a_name_that_imitates_the_owner_is_refused(run_web, trick):
    async with run_web(bot={"owner_name": "Mia"}) as platform, page(platform) as guest:
        answer = await guest.join(name=TRICKS[trick], guest="guest-token-1234")
        assert answer["type"] == "error", answer
        assert answer["message"].endswith("a name taken here; pick another") or \
            answer["message"] == "the name 'Mia' is taken here; pick another", answer["message"]
        assert "\n" not in answer["message"]
        welcome = await guest.join(name="Mila", guest="guest-token-1234")
        assert welcome["type"] == "welcome", "the same page can join under another name"


async def test_a_name_that_imitates_a_guest_who_is_here_is_refused(run_web):
    async with run_web() as platform:
        async with page(platform, name="Anna", guest="anna-token-1234"), page(platform) as mallory:
            for fake in ("\u0410nna", "Anna\u200b", "\uff21\uff2e\uff2e\uff21", "anna", "A n n a", "Ann\u0430"):
                answer = await mallory.join(name=fake, guest="mallory-token-1234")
                assert answer["type"] == "error" and "pick another" in answer["message"], (fake, answer)
            async with page(platform, name="Anna", guest="anna-token-1234") as second_tab:
                assert second_tab.me["name"] == "Anna", "Anna herself may open another tab"
        async with page(platform, name="anna", guest="mallory-token-1234") as later:
            assert later.me["name"] == "anna", "once she has left, the name is free"


async def test_the_name_shown_is_the_normalized_one(run_web):
    async with run_web() as platform, page(platform, name="  \uff2a\uff4f  \u200bSmith\u202e ") as guest:
        assert guest.me["name"] == "Jo Smith"


def test_skeletons_fold_look_alikes_together():
    mia = skeleton("Mia")
    for fake in ("MIA", "mia", "Mi\u0430", "\u041c\u0456\u0430", "\uff2d\uff49\uff41", "M\u00eca", "M 1 a", "M.i.a",
                 "M\u03b9a", "Mi\u0251"):
        assert skeleton(fake) == mia, fake
    assert skeleton("rn") == skeleton("m") and skeleton("0l1") == skeleton("Oil")
    assert skeleton("\u0440\u0430\u0443\u0440\u0430\u0131") == skeleton("paypal")
    for other in ("Max", "Milo", "Mina", "Ann"):
        assert skeleton(other) != mia, other


def test_display_names_keep_real_names_and_refuse_what_cannot_be_shown():
    for name in ("Jos\u00e9", "\u5c0f\u660e", "Zo\u00eb", "\u0410\u043d\u043d\u0430", "O'Brien",
                 "\U0001f469\u200d\U0001f4bb dev"):
        assert display_name(name) == name, name
    assert display_name("Ann\u200b\u200c") == "Ann" and display_name("\ufeffBo") == "Bo"
    assert display_name("\u202eaiM") == "Mia", "an override is shown as it reads"
    for bad, message in (("   ", "pick a name"), ("\u200b\u200b", "pick a name"), ("a" * 33, "at most 32"),
                         ("bell\x07", "at most 32")):
        with pytest.raises(InputError, match=message):
            display_name(bad)
