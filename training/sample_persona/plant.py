"""Private data planted in the sample persona's chats, for the scrubber to catch.

Each ``Episode`` is a short scripted exchange in one chat where someone gives away a private
value the way people do: a new phone number, an e-mail for the photos, an address for a wedding
invitation, a card number pasted into the wrong chat, an IBAN for the hostel money, the wifi
password, a token pasted by accident, a server's IP, resident ID numbers for train tickets. The
values are fake but valid where validity is checkable (Luhn for cards, ISO 7064 mod 97 for
IBANs, the CN ID checksum), in several formats per kind, said by Alex and by friends, in plain
messages, in a forwarded post and in a photo caption.

A slot in a line is ``{SLOT}`` (a value made by ``VALUES[SLOT]``) or ``{KIND=literal}``; the
kind of a slot is the scrubber's type name (``doppel.pii.findings.TYPES``) before the first ``_``.
``training.sample_persona.synth`` turns the episodes into sessions and records every value in
``planted_pii.json``.

Tested through ``training.sample_persona.synth`` in ``tests/training/sample_persona/test_synth.py``
(every scrubber type planted by Alex and friends, found exactly, never in the built files).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import MappingProxyType

from doppel.pii.validators import luhn_ok
from training.pii_eval.fakes import cn_id, digits, iban, token

_AREAS = ("312", "773", "872", "708")


def _line(rng: random.Random) -> str:
    # 555-0100..0199 is the range reserved for fiction: no real subscriber has these numbers.
    return f"555-01{rng.randint(0, 99):02d}"


def _phone(style: str):
    def make(rng: random.Random) -> str:
        area, number = rng.choice(_AREAS), _line(rng)
        return {"paren": f"({area}) {number}", "dash": f"{area}-{number}", "dot": f"{area}.{number.replace('-', '.')}",
                "plus": f"+1 {area}-{number}", "spaced": f"+1 {area} {number.replace('-', ' ')}",
                "one": f"1-{area}-{number}", "uk": f"+44 7700 900{rng.randint(0, 999):03d}"}[style]
    return make


def _card(prefix: str, length: int, groups: tuple[int, ...], sep: str):
    def make(rng: random.Random) -> str:
        body = prefix + digits(rng, length - len(prefix) - 1)
        number = next(body + c for c in "0123456789" if luhn_ok(body + c))
        parts, at = [], 0
        for size in groups:
            parts.append(number[at:at + size])
            at += size
        return sep.join(parts)
    return make


def _iban(country: str, spaced: bool):
    return lambda rng: iban(rng, country, spaced=spaced)


VALUES = MappingProxyType({
    "PHONE_PAREN": _phone("paren"), "PHONE_DASH": _phone("dash"), "PHONE_DOT": _phone("dot"),
    "PHONE_PLUS": _phone("plus"), "PHONE_SPACED": _phone("spaced"), "PHONE_ONE": _phone("one"),
    "PHONE_UK": _phone("uk"),
    "CARD_VISA": _card("4", 16, (4, 4, 4, 4), " "), "CARD_MC": _card("54", 16, (4, 4, 4, 4), "-"),
    "CARD_AMEX": _card("37", 15, (4, 6, 5), " "), "CARD_PLAIN": _card("4", 16, (16,), ""),
    "IBAN_DE": _iban("DE", True), "IBAN_GB": _iban("GB", True), "IBAN_NL": _iban("NL", False),
    "SECRET_GHP": lambda rng: "ghp_" + token(rng, 36),
    "SECRET_SKPROJ": lambda rng: "sk-proj-" + token(rng, 40),
    "URL_ALBUM": lambda rng: f"https://photos.example.com/share/{token(rng, 12)}?access_token={token(rng, 28)}",
    "URL_ZOOM": lambda rng: f"https://zoom.us/j/{rng.randint(81, 99)}{digits(rng, 8)}?pwd={token(rng, 32)}",
    "ID": lambda rng: cn_id(rng),
})


@dataclass(frozen=True)
class Episode:
    """A scripted exchange: ``chat`` is a chat key of ``training.sample_persona.synth``; each line is
    (speaker key, text, form) with form "" (a message), "photo" (a caption) or "forward:<origin>"."""

    chat: str
    lines: tuple[tuple[str, str, str], ...]


def _e(chat: str, *lines: tuple[str, str] | tuple[str, str, str]) -> Episode:
    return Episode(chat, tuple((*line, "")[:3] for line in lines))


EPISODES = (
    _e("dm_jordan", ("alex", "new phone who dis"), ("alex", "jk my number changed it's {PHONE_PAREN}"),
       ("alex", "old one died in the chalk bucket 💀"), ("jordan", "SAVING IT NOW!!!")),
    _e("dm_priya", ("priya", "My sister Anika will pick up the spare keys on Saturday. Her number is {PHONE_PLUS}."),
       ("alex", "ok bestie i'll text her"), ("alex", "tell her miso bites ✨")),
    _e("g_nights", ("sam", "out thursday. analyzer dies, call {PHONE_DOT}."), ("alex", "sam that's so real"),
       ("alex", "i will call you at 4am just to say hi")),
    _e("dm_mei", ("mei", "I'm in London for work this week haha, my UK number is {PHONE_UK} 🙂"),
       ("alex", "omg have fun"), ("alex", "bring me back a scone bestie")),
    _e("g_climb", ("alex", "if anyone finds my black shoes at summit text me {PHONE_DASH}"),
       ("alex", "they smell bad you'll know 😭"), ("dani", "lol i think i saw them by the bench")),
    _e("g_nights", ("kez", "new cell btw, {PHONE_ONE} 🙃"), ("alex", "saved as kez night shift queen ✨")),
    _e("g_flat", ("dani", "plumber's cell is {PHONE_PAREN}, call him if the shower floods again ugh"),
       ("alex", "the shower and i are not speaking")),
    _e("dm_mei", ("alex", "my mom wants to thank you for the starter"),
       ("alex", "her number is {PHONE_SPACED} she'll send you a card probably"), ("mei", "aww that's so sweet 🙂")),
    _e("dm_priya", ("priya", "Could you send the wedding photos to {EMAIL=priya.nair.writes@gmail.com}? Thank you."),
       ("alex", "sending them rn"), ("alex", "u look so good in all of them 😭")),
    _e("g_carbs", ("alex", "send the focaccia recipe to {EMAIL=alex.rivera.bakes@gmail.com} or i will lose it"),
       ("mei", "sending it now haha")),
    _e("dm_sam", ("sam", "new schedule goes to {EMAIL=skeller.nights@outlook.com}. forward it."),
       ("alex", "forwarding it bestie")),
    _e("dm_jordan", ("alex", "use my work email {EMAIL=arivera@northside-lab.org} for the gym form"),
       ("alex", "it's so corporate i hate it 💀"), ("jordan", "LMAOOO OK DONE")),
    _e("dm_mei", ("mei", "btw my new email is {EMAIL=mei.lin.0412@proton.me} 🙂"), ("alex", "saved ✨")),
    _e("dm_priya", ("priya", "Could you send me your new address for the wedding invitation?"),
       ("alex", "it's {ADDRESS=1428 w belmont ave apt 3b}"), ("alex", "the buzzer is broken just text me")),
    _e("g_flat", ("dani", "your package went to {ADDRESS=1432 W Belmont Ave} by mistake, the neighbours have it"),
       ("alex", "not the neighbours holding my flour hostage 😭")),
    _e("g_climb", ("jordan", "PARTY AT MY PLACE SATURDAY!!! {ADDRESS=77 N HALSTED ST} 🎉"),
       ("alex", "i'm bringing a loaf and emotional support")),
    _e("dm_mei", ("mei", "The new bakery is at {ADDRESS=2210 N Milwaukee Ave}, we should go!"),
       ("alex", "lowkey yes"), ("alex", "saturday after i wake up")),
    _e("dm_sam", ("alex", "can u pick me up from {ADDRESS=845 elm st} i'm at my mom's"), ("sam", "10 min.")),
    _e("dm_priya", ("alex", "can u book the cabin w my card i'm on shift"), ("alex", "{CARD_VISA} exp 08/27"),
       ("priya", "Booked. Please do not send card numbers in chats, Alex.")),
    _e("dm_mei", ("mei", "Use my card for the concert tickets: {CARD_MC}, you got the last ones haha"),
       ("alex", "bestie ily")),
    _e("g_nights", ("tomas", "ordering pizza on the team card {CARD_AMEX} lol"), ("alex", "pineapple or i walk")),
    _e("g_carbs", ("alex", "ok but hear me out"), ("alex", "i'm buying the banneton set on my card {CARD_PLAIN}"),
       ("alex", "wait wrong chat 💀"), ("priya", "Alex, please delete that.")),
    _e("dm_mei", ("mei", "Here's my IBAN for the Berlin hostel money: {IBAN_DE} 🙂"), ("alex", "sending it tonight")),
    _e("dm_priya", ("priya", "For the deposit refund, my UK account is {IBAN_GB}. Thank you, Alex."),
       ("alex", "ok done ✨")),
    _e("g_flat", ("dani", "the amsterdam place wants a transfer to {IBAN_NL} by friday ugh"),
       ("alex", "lowkey can't wait")),
    _e("g_flat", ("alex", "wifi password is {SECRET=misoisaqueen42}"), ("alex", "don't ask")),
    _e("g_flat", ("priya", "The new Wi-Fi password is: {SECRET=Gerald&Miso2025}"),
       ("alex", "gerald will be honoured")),
    _e("dm_jordan", ("alex", "netflix is my email and the password is {SECRET=synthw4ve!nights}"),
       ("jordan", "YOU'RE THE BEST!!!")),
    _e("dm_sam", ("sam", "door pin: {SECRET=839214}."), ("alex", "ty")),
    _e("dm_sam", ("alex", "ok but hear me out i made a bot that posts synthwave every night"),
       ("alex", "wait did i just paste my token {SECRET_GHP}"), ("alex", "ignore that 💀"), ("sam", "revoke it.")),
    _e("dm_mei", ("mei", "Here's the API key for the playlist app: {SECRET_SKPROJ}"), ("alex", "omg ty")),
    _e("g_climb", ("jordan", "ALBUM FROM SATURDAY!!! {URL_ALBUM}"),
       ("alex", "i look like a gremlin in every single one")),
    _e("g_nights", ("alex", "zoom for the training thing {URL_ZOOM}"), ("kez", "thx 🙃")),
    _e("dm_mei", ("alex", "the plex server is at {IP=73.162.44.201} port 32400"),
       ("alex", "the synthwave library is all there ✨")),
    _e("g_nights", ("kez", "the analyzer's IP is {IP=10.12.4.77} if IT asks tbh"), ("alex", "they never ask")),
    _e("dm_mei", ("alex", "booking the shanghai train tickets rn"), ("alex", "need your resident id number bestie"),
       ("mei", "Sure! Mine is {ID} and my mom's is {ID}"), ("alex", "booked ✨")),
    _e("g_flat", ("priya", "Maintenance visit on Thursday at 10:00. Questions: {PHONE_PAREN} or "
                           "{EMAIL=office@northside-pm.com}.", "forward:Northside Property Management"),
       ("alex", "thursday at 10 is the middle of my night 😭")),
    _e("g_flat", ("dani", "found this on the door, says call {PHONE_DASH} about the parking", "photo"),
       ("alex", "that's so real i'm ignoring it")),
)

# The owner's own number, in the export's personal_information: never imported as a message.
PROFILE_PHONE = "+1 312 555 0147"
