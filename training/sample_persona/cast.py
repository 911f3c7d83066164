"""Who is in the sample persona's chats: Alex (the owner), seven friends with their voices, and
the eight chats with their members, topics and share of the conversations.

Data for ``training.sample_persona.synth``; the voices are rendered by ``training.sample_persona.voices``.

Tested through ``training.sample_persona.synth`` in ``tests/training/sample_persona/test_synth.py``
(every chat imported, DMs and groups, the friends' distinct voices).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from training.sample_persona.voices import Voice

OWNER_NAME = "Alex Rivera"
OWNER_USER_ID = 5550147
OWNER_ID = f"user{OWNER_USER_ID}"


@dataclass(frozen=True)
class Person:
    name: str
    user_id: int
    voice: Voice


PEOPLE = MappingProxyType({
    "alex": Person(OWNER_NAME, OWNER_USER_ID, Voice("alex")),
    "priya": Person("Priya Nair", 5550201, Voice("formal")),
    "jordan": Person("Jordan Okafor", 5550202, Voice("caps")),
    "sam": Person("Sam Keller", 5550203, Voice("terse")),
    "mei": Person("Mei Lin", 5550204, Voice("casual", ("haha", "🙂", "~"))),
    "dani": Person("Dani Brooks", 5550205, Voice("casual", ("lol", "ugh"))),
    "tomas": Person("Tomás Ruiz", 5550206, Voice("casual", ("lol", "👀"))),
    "kez": Person("Kez Adeyemi", 5550207, Voice("casual", ("🙃", "tbh"))),
})


@dataclass(frozen=True)
class ChatSpec:
    key: str
    name: str
    type: str              # Telegram's chat type: personal_chat, private_group, private_supergroup
    id: int
    members: tuple[str, ...]
    topics: tuple[tuple[str, int], ...]
    weight: float          # share of the generated sessions
    night: bool = False    # a night-shift chat: sessions start between 10pm and 5am


CHATS = (
    ChatSpec("dm_priya", "Priya Nair", "personal_chat", 5550201, ("priya",),
             (("flat", 2), ("miso", 3), ("sourdough", 2), ("plans", 3)), 1.0),
    ChatSpec("dm_jordan", "Jordan Okafor", "personal_chat", 5550202, ("jordan",),
             (("climbing", 4), ("synthwave", 2), ("plans", 3), ("miso", 1)), 1.1),
    ChatSpec("dm_sam", "Sam Keller", "personal_chat", 5550203, ("sam",),
             (("nights", 4), ("climbing", 2), ("plans", 2)), 0.8),
    ChatSpec("dm_mei", "Mei Lin", "personal_chat", 5550204, ("mei",),
             (("synthwave", 3), ("sourdough", 3), ("miso", 2), ("plans", 2)), 1.0),
    ChatSpec("g_climb", "send it 🧗", "private_supergroup", 1855503011, ("jordan", "sam", "dani"),
             (("climbing", 6), ("plans", 2), ("miso", 1), ("synthwave", 1)), 1.3),
    ChatSpec("g_flat", "flat 3b", "private_group", 5550302, ("priya", "dani"),
             (("flat", 5), ("miso", 3), ("sourdough", 1), ("plans", 1)), 1.0),
    ChatSpec("g_nights", "night shift survivors", "private_supergroup", 1855503033, ("sam", "tomas", "kez"),
             (("nights", 6), ("synthwave", 2), ("plans", 1), ("miso", 1)), 1.2, night=True),
    ChatSpec("g_carbs", "carb cult 🍞", "private_group", 5550304, ("mei", "priya", "jordan"),
             (("sourdough", 6), ("plans", 3), ("miso", 1)), 1.0),
)
CHAT_BY_KEY = MappingProxyType({c.key: c for c in CHATS})
# Alex sleeps in the morning: activity by hour of day (local time).
HOURS = (8, 8, 7, 6, 5, 3, 1, 1, 0.5, 0.5, 0.5, 1, 2, 3, 5, 5, 5, 4, 4, 4, 5, 6, 7, 8)
# The night-shift chat wakes up at 10pm and goes quiet at dawn.
NIGHT_HOURS = (8, 8, 7, 6, 5, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 8)
