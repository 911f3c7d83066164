"""The sample persona's phrase bank: what Alex and friends talk about, topic by topic.

Pure data for ``training.sample_persona.synth``. Each ``Topic`` has slot lists (``{slot}`` in a line is
filled from the topic's slots, then from ``COMMON_SLOTS``), lines for a friend opening the topic
and following it up, and lines for Alex opening it and replying on it. A friend line is
``"Full sentence.|terse form"``: the formal, excited and casual voices start from the full
sentence, the terse voice from the short form (``training.sample_persona.voices`` renders both). Alex's
lines are written lower case without final punctuation, which is the voice.

Ordinary lines carry no private data and nothing shaped like it (no long digit runs, no
"<number> <word> drive"): the only findings in the export are the planted ones
(``training.sample_persona.plant``), and the tests check that.

Tested through ``training.sample_persona.synth`` in
``tests/training/sample_persona/test_synth.py`` (only planted values are found, lines vary).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Topic:
    name: str
    slots: MappingProxyType
    friend_open: tuple[str, ...]
    friend_follow: tuple[str, ...]
    alex_open: tuple[str, ...]
    alex_reply: tuple[str, ...]


def _slots(**values: tuple[str, ...]) -> MappingProxyType:
    return MappingProxyType(values)


COMMON_SLOTS = _slots(
    day=("friday", "saturday", "sunday", "tomorrow", "thursday", "next week"),
    food=("tacos", "ramen", "pho", "pizza", "dumplings", "brunch", "bagels"),
    time=("six", "seven", "eight", "after my nap", "whenever"),
)

CLIMBING = Topic(
    "climbing",
    _slots(grade=("v3", "v4", "v5", "v6"), colour=("pink", "purple", "yellow", "orange", "teal", "black"),
           move=("heel hook", "crimp", "sloper", "dyno", "mantle", "toe hook", "drop knee"),
           part=("forearms", "fingers", "shoulders", "calluses", "toes"),
           gym=("the bloc", "summit gym", "the warehouse gym"),
           when=("tonight", "tomorrow", "thursday", "saturday morning", "sunday")),
    friend_open=(
        "Are you climbing {when}?|climbing {when}",
        "They reset the {colour} circuit at {gym}.|{colour} circuit got reset",
        "Did you finally send the {colour} {grade}?|sent the {grade} yet",
        "My {part} hurt so much after yesterday.|{part} dead",
        "Do you want to try the {move} problem together?|{move} problem. you in",
        "Somebody took my chalk bag at {gym}.|chalk bag gone",
        "I think I am going to try lead climbing.|trying lead",
        "Are we still going outdoors this weekend?|outdoors this weekend",
    ),
    friend_follow=(
        "What time works for you?|time",
        "Should we get food after?|food after",
        "Did you tape your fingers this time?|tape",
        "Is the {colour} one actually a {grade}? It feels sandbagged.|{colour} is sandbagged",
        "I will bring the spare shoes.|bringing shoes",
        "Which wall is it on?|which wall",
    ),
    alex_open=(
        "who's climbing {when}",
        "the {colour} {grade} at {gym} is personally attacking me",
        "i finally sent the {colour} {grade}",
        "my {part} are filing a complaint",
        "new climbing shoes day",
        "the {move} on the new {colour} is evil",
    ),
    alex_reply=(
        "yes obviously",
        "i'm in if i survive my shift",
        "the {move} on that one is so stupid",
        "i flashed the start and then fell off the {move} like a sack of flour",
        "my {part} are gone",
        "{gym} at {time}",
        "it's so sandbagged it's not even funny",
        "i'm bringing the good chalk",
        "we're sending the {colour} {grade} this time i can feel it",
        "i fell off the top move three times",
        "the setter who made that {move} owes me money",
        "that's a {grade} in spirit",
        "tape is for people who plan ahead",
        "i'll be there after i feed miso",
        "outdoors?? in this economy",
        "down to try lead if you hold my rope with love",
        "tacos after is non negotiable",
    ),
)

SOURDOUGH = Topic(
    "sourdough",
    _slots(hydration=("70%", "75%", "78%", "80%"), hours=("four hours", "six hours", "all night", "twelve hours"),
           flour=("rye", "whole wheat", "bread flour", "spelt"),
           outcome=("a frisbee", "a brick", "a perfect ear", "the most open crumb", "a pancake", "a cathedral")),
    friend_open=(
        "How is Gerald doing?|gerald alive",
        "My loaf came out flat again.|loaf flat again",
        "What hydration do you use?|hydration",
        "Could I have some of your starter?|need starter",
        "I tried the {flour} recipe you sent.|tried the {flour} one",
        "Do you feed your starter every day?|feed daily",
        "Look at this crumb!|crumb",
    ),
    friend_follow=(
        "How long was your bulk ferment?|bulk time",
        "Did you use the dutch oven?|dutch oven",
        "Mine smells like nail polish. Is that normal?|smells weird",
        "Can you bring a loaf on Saturday?|bring a loaf",
        "How do you get the ear?|ear how",
    ),
    alex_open=(
        "gerald doubled in {hours} i'm so proud of him",
        "update: gerald is thriving",
        "made {outcome} today",
        "did a {hydration} loaf and it came out {outcome}",
        "discard crackers era",
        "i'm up at 4am scoring bread like a psycho",
    ),
    alex_reply=(
        "gerald is thriving he's the only stable thing in my life",
        "i do {hydration} hydration but i'm also chaotic",
        "bulk was like {hours} bc i fell asleep",
        "{flour} makes it so much better",
        "it came out as {outcome}",
        "yes take some gerald has enough love to share",
        "nail polish smell means he's hungry feed him",
        "dutch oven or nothing",
        "i'll bring a loaf if it doesn't turn into {outcome}",
        "the crumb is so pretty i want to frame it",
        "i talk to gerald more than i talk to people",
        "feed him when he looks sad",
        "discard pancakes {day} come over",
        "the ear is just vibes and a sharp razor",
    ),
)

MISO = Topic(
    "miso",
    _slots(crime=("knocked my water glass off the table", "screamed at the door for twenty minutes",
                  "sat on my keyboard during a call", "stole a sock and hid it under the couch", "ate a hair tie",
                  "knocked gerald's jar over", "woke me up at 5am for no reason", "bit the plant again"),
           spot=("the laundry basket", "my pillow", "the bathtub", "a box that's too small for her", "the sink")),
    friend_open=(
        "How is Miso?|miso ok",
        "Please send a picture of Miso.|miso pic",
        "Is Miso still sleeping in {spot}?|miso still in {spot}",
        "Did Miso go to the vet?|vet",
        "Can I come say hello to Miso this weekend?|visiting miso",
    ),
    friend_follow=(
        "What did the vet say?|vet said what",
        "Is she eating properly?|eating ok",
        "She is so fluffy.|fluffy",
        "Why is she like this?|why",
    ),
    alex_open=(
        "miso {crime}",
        "miso is asleep in {spot} and i'm not allowed to move",
        "update from miso: she {crime}",
        "miso has decided {spot} is hers now",
    ),
    alex_reply=(
        "she {crime} so no she's not ok",
        "she's in {spot} living her best life",
        "vet said she's perfect and a little dramatic",
        "she ate her whole dinner and then tried to eat mine",
        "she's a menace and i love her",
        "pics coming she's being so cute rn",
        "yes come she needs new people to ignore",
        "she sat on my chest at 5am to tell me she exists",
        "she's fluffy bc she's full of spite",
        "she's the boss of this apartment i just pay rent",
    ),
)

SYNTHWAVE = Topic(
    "synthwave",
    _slots(artist=("neon drive", "midnight arcade", "chromeline", "vhs dreams", "laser highway", "sunset protocol"),
           thing=("album", "single", "mixtape", "live set")),
    friend_open=(
        "Have you heard the new {artist} {thing}?|new {artist}",
        "I need music for my drive. Any recommendations?|music recs",
        "Are you going to the {artist} show?|{artist} show",
        "I made a playlist for the night shift.|made a playlist",
    ),
    friend_follow=(
        "Which track is the best one?|best track",
        "Tickets are selling fast.|tickets going fast",
        "I honestly do not get the appeal.|dont get it",
        "Is it good for running?|good for running",
    ),
    alex_open=(
        "the new {artist} {thing} is so good i'm crying",
        "putting {artist} on loud and driving to nowhere",
        "synthwave night at my place {day}",
        "made a playlist for 3am and it slaps",
    ),
    alex_reply=(
        "{artist} is literally the soundtrack of my night shifts",
        "track three is a religious experience",
        "we're going to the {artist} show i already decided",
        "synthwave is just feelings with a drum machine",
        "it's giving neon rain and bad decisions",
        "you don't get it bc you've never driven at 3am",
        "adding it to the playlist rn",
        "i've had the {thing} on repeat all week",
        "it's perfect for running if you want to feel like a movie",
    ),
)

NIGHTS = Topic(
    "nights",
    _slots(hour=("2am", "3am", "4am", "5am"),
           machine=("the centrifuge", "the analyzer", "the printer", "the tube system"),
           snack=("vending machine chips", "cold pizza", "a sad granola bar", "three coffees", "gas station sushi")),
    friend_open=(
        "Who is on tonight?|on tonight",
        "{machine} is broken again.|{machine} broke",
        "Can anyone swap Thursday?|swap thursday",
        "Did you see the new schedule?|schedule is out",
        "It is so quiet tonight.|quiet",
        "I am so tired.|tired",
    ),
    friend_follow=(
        "Coffee run?|coffee",
        "How many samples are left?|samples left",
        "Are you sleeping at all this week?|sleeping",
        "Did anyone call maintenance?|maintenance",
    ),
    alex_open=(
        "{hour} and {machine} is making a noise i don't like",
        "night shift brain is real i just put my phone in the fridge",
        "who's on tonight i brought snacks",
        "it's {hour} and i'm eating {snack}",
    ),
    alex_reply=(
        "i'm on till seven send help",
        "{machine} hates me personally",
        "i can swap if you take my sunday",
        "the schedule is a crime",
        "don't say the q word",
        "i'm surviving on {snack}",
        "sleep is a social construct",
        "i'll grab coffee in ten",
        "i slept four hours and i'm thriving",
        "i called maintenance they said and i quote hmm",
    ),
)

FLAT = Topic(
    "flat",
    _slots(chore=("bins", "dishes", "recycling", "bathroom", "vacuuming"),
           appliance=("the heater", "the shower", "the washing machine", "the wifi", "the fridge")),
    friend_open=(
        "Reminder: the {chore} need doing tonight.|{chore} tonight",
        "{appliance} is broken again.|{appliance} broken",
        "Whose turn is it to do the {chore}?|{chore}. whose turn",
        "The landlord is coming on Thursday.|landlord thursday",
        "Someone left a pan soaking for three days.|pan soaking",
    ),
    friend_follow=(
        "Please let me know by tonight.|let me know",
        "Can you message the landlord?|msg landlord",
        "Thank you.|thx",
    ),
    alex_open=(
        "{appliance} is making the noise again",
        "who ate my leftovers i'm not mad i just want to talk",
        "i did the {chore} i want praise",
    ),
    alex_reply=(
        "on it after my shift",
        "it's my turn i know i know",
        "the pan is soaking for a reason it's a process",
        "i'll message the landlord he loves me",
        "{appliance} has been broken since the dawn of time",
        "i'll clean before he comes i promise",
        "miso did it",
    ),
)

PLANS = Topic(
    "plans",
    _slots(),
    friend_open=(
        "Are you free {day}?|free {day}",
        "Do you want to get {food} later?|{food}",
        "How are you doing?|sup",
        "What are you up to this weekend?|weekend plans",
        "Did you watch the show I told you about?|watched it",
    ),
    friend_follow=(
        "What time?|time",
        "Where should we go?|where",
        "Sounds good.|ok",
    ),
    alex_open=(
        "who wants {food} i'm starving",
        "i need to leave the house {day} someone take me somewhere",
        "wait is it {day} already",
    ),
    alex_reply=(
        "i'm free after four if i wake up",
        "{food} is always yes",
        "i'm surviving barely",
        "{day} works",
        "i watched it in one night and now i'm unwell",
        "i'm down but i need a nap first",
        "the place with the good {food}",
    ),
)

TOPICS = MappingProxyType({t.name: t for t in (CLIMBING, SOURDOUGH, MISO, SYNTHWAVE, NIGHTS, FLAT, PLANS)})

# What people forward into the chats, by topic (channel posts: someone else's words).
FORWARDS = (
    ("climbing", "Summit Gym",
     "Reset alert: the north wall gets twelve new problems on Thursday. Old problems come down tonight."),
    ("climbing", "Summit Gym", "Members night this Friday: free tape, cheap pizza and a dyno competition."),
    ("synthwave", "Synthwave Daily",
     "New release: Midnight Arcade drops their third album at midnight. Preview tracks are up."),
    ("sourdough", "Bread Nerds", "Tip of the day: a cold retard overnight gives a tangier loaf and a better ear."),
    ("miso", "Cat Facts", "Cats sleep between twelve and sixteen hours a day."),
    ("flat", "City Alerts", "Street cleaning on your block tomorrow morning. Move your car."),
    ("nights", "Hospital Staff News", "Reminder: the night cafeteria closes early this week for renovation."),
)
