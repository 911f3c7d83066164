"""X/Twitter archive tweets.js: the owner's posts as articles, threads, retweets, replies, links."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.importers import twitter
from training.importers.detect import import_file
from training.importers.messages import Kind

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports"
TWEETS = EXPORTS / "twitter" / "data" / "tweets.js"


@pytest.fixture(scope="module")
def archive():
    return import_file(TWEETS, fmt="twitter", tz="UTC")


def by_id(result, tweet_id: str):
    return next(m for m in result.messages if m.message_id == tweet_id)


def test_every_tweet_is_the_owners_named_from_account_js(archive):
    assert archive.format == "twitter" and archive.stats.problems == []
    assert len(archive.messages) == archive.stats.records == 12
    assert {(m.platform, m.sender_id, m.sender_name, m.is_owner, m.chat_type) for m in archive.messages} == {
        ("twitter", "@miachen_hikes", "Mia Chen", True, "dm")}
    assert archive.stats.owner_messages == 11          # the retweet is not her words


def test_owner_given_on_the_command_line_wins():
    result = import_file(TWEETS, fmt="twitter", owner="Mia")
    assert {m.sender_name for m in result.messages} == {"Mia"}


def test_without_account_js_the_owner_is_still_every_tweet(tmp_path):
    shutil.copy(TWEETS, tmp_path / "tweets.js")
    result = import_file(tmp_path / "tweets.js", fmt="twitter")
    assert {(m.sender_id, m.sender_name) for m in result.messages} == {("owner", "owner")}
    assert result.stats.problems == []


def test_oldest_first_with_aware_times(archive):
    first = archive.messages[0]
    assert first.text == "First snow on the ridge this morning. Boots soaked, spirits high."
    assert first.timestamp == datetime(2023, 4, 22, 8, 15, tzinfo=UTC)
    stamps = [m.timestamp for m in archive.messages]
    assert stamps == sorted(stamps) and all(s.tzinfo is not None for s in stamps)
    assert first.source.endswith("tweets.js:tweet[11]")     # the archive lists the newest first


def test_retweet_is_a_forward_without_the_rt_prefix(archive):
    retweet = by_id(archive, "1650200000000000003")
    assert retweet.kind is Kind.FORWARD
    assert retweet.text == "Trail closures this weekend: North Fork and Eagle Pass. Check before you go!"
    assert retweet.extra["retweet_of"] == "trailsdaily"


def test_reply_keeps_only_the_owners_text(archive):
    reply = by_id(archive, "1650300000000000004")
    assert reply.text == "yes!! I'll bring the stove & the good coffee ☕"      # &amp; unescaped
    assert (reply.reply_to, reply.extra["in_reply_to"]) == ("1650290000000000000", "annlee_outdoors")
    assert reply.chat_id == "1650300000000000004"        # its parent is not hers: a post of its own
    emoji_reply = by_id(archive, "1650900000000000012")
    assert (emoji_reply.kind, emoji_reply.text) == (Kind.EMOJI, "😂")


def test_a_self_reply_thread_is_one_chat(archive):
    thread = [m for m in archive.messages if m.chat_id == "1650400000000000005"]
    assert [m.text for m in thread] == [
        "Thread: what I pack for a winter day hike 🧵",
        "1/ Layers. Always one more than you think.",
        "2/ A thermos. Hot tea at the summit is a human right.\n\n<3 to whoever taught me that"]
    assert {m.chat_name for m in thread} == {"Thread: what I pack for a winter day hike 🧵"}
    assert [m.reply_to for m in thread] == ["", "1650400000000000005", "1650400000000000006"]


@pytest.mark.parametrize("tweet_id, kind, text, extra", [
    ("1650100000000000002", Kind.TEXT, "Wrote up the whole loop, with the water sources:",
     {"links": ["https://miachen.example/blog/ridge-loop"]}),
    ("1650500000000000008", Kind.EMOJI, "🏔️❄️🥾", {}),
    ("1650600000000000009", Kind.TEXT, "今天终于登顶了！风超级大，但是值得 💪 #徒步", {}),
    ("1650700000000000010", Kind.MEDIA, "", {"media": ["photo"]}),               # a photo and its t.co link only
    ("1650800000000000011", Kind.TEXT, "This is exactly why I carry microspikes",  # a quote tweet: her words
     {"links": ["https://twitter.com/trailsdaily/status/1657000000000000000"]}),
])
def test_kinds_links_and_media(archive, tweet_id, kind, text, extra):
    message = by_id(archive, tweet_id)
    assert (message.kind, message.text, message.extra) == (kind, text, extra)
    assert "t.co/" not in message.text


def test_chat_names_are_the_first_line(archive):
    assert by_id(archive, "1650600000000000009").chat_name == "今天终于登顶了！风超级大，但是值得 💪 #徒步"
    long_title = "First snow on the ridge this morning. Boots soaked, spirits…"     # cut at 60 characters
    assert by_id(archive, "1650000000000000001").chat_name == long_title
    assert by_id(archive, "1650700000000000010").chat_name == "tweet 1650700000000000010"


@pytest.mark.parametrize("value, expected", [
    ("Sun May 14 21:03:00 +0000 2023", datetime(2023, 5, 14, 21, 3, tzinfo=UTC)),
    ("Tue Feb 23 12:28:47 +0800 2021", datetime(2021, 2, 23, 12, 28, 47, tzinfo=timezone(timedelta(hours=8)))),
    ("Sun Foo 14 21:03:00 +0000 2023", None),
    ("Sun Feb 30 21:03:00 +0000 2023", None),
    ("2023-05-14T21:03:00Z", None),
    (1684098180, None),
])
def test_parse_created_at(value, expected):
    assert twitter.parse_created_at(value) == expected


def test_long_note_tweets_are_cut_like_articles(tmp_path):
    text = " ".join(f"Sentence number {n} about the long ridge walk and what I learned." for n in range(40))
    path = tmp_path / "tweets.js"
    path.write_text("window.YTD.tweets.part0 = " + json.dumps([{"tweet": {
        "id_str": "1", "created_at": "Sun May 14 21:03:00 +0000 2023", "full_text": text}}]))
    result = import_file(path, fmt="twitter", owner="Mia", tz="UTC")
    assert len(result.messages) > 1 and all(len(m.text) <= 750 for m in result.messages)
    assert [m.message_id for m in result.messages][:2] == ["1#1", "1#2"]
    assert {m.chat_id for m in result.messages} == {"1"}


def test_old_archives_without_the_tweet_wrapper(tmp_path):
    path = tmp_path / "tweet.js"
    path.write_text('window.YTD.tweet.part0 = [ {"id_str" : "7", "created_at" : "Mon Jan 07 10:00:00 +0000 2019",'
                    ' "full_text" : "hello 2019", "retweeted" : false} ]')
    result = import_file(path, fmt="twitter", owner="Mia")
    assert [(m.message_id, m.text) for m in result.messages] == [("7", "hello 2019")]


def test_sniff_knows_tweets_files_from_the_archives_other_files():
    assert twitter.sniff(TWEETS.read_text(encoding="utf-8")) > 10
    assert twitter.sniff("window.YTD.deleted_tweets.part0 = [ ]") == 10
    assert twitter.sniff((EXPORTS / "twitter" / "data" / "account.js").read_text()) == 0
    assert twitter.sniff('window.YTD.like.part0 = [{"like": {}}]') == 0
    assert twitter.sniff((EXPORTS / "telegram" / "result.json").read_text(encoding="utf-8")) == 0


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "tweets.js"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize("body, error", [
    ('window.YTD.account.part0 = [{"account": {}}]', r"tweets.js: is the archive's 'account' file, not its tweets"),
    ("var tweets = 1", r"tweets.js: is not an X/Twitter archive tweets file"),
    ('window.YTD.tweets.part0 = {"a": 1}', r"does not hold a list of tweets"),
    ("window.YTD.tweets.part0 = [1]", r"tweets.js: tweet\[0\]: a tweet is not a JSON object"),
    ('window.YTD.tweets.part0 = [{"tweet": {"created_at": "yesterday"}}]',
     r"tweets.js: tweet\[0\]: created_at 'yesterday' is not a date like"),
    ('window.YTD.tweets.part0 = [{"tweet": {"created_at": "Sun May 14 21:03:00 +0000 2023", "full_text": "a',
     r"tweets.js: line 1: the file ends inside \[0\]"),
])
def test_bad_files_are_one_line_errors(tmp_path, body, error):
    with pytest.raises(InputError, match=error):
        import_file(write(tmp_path, body), fmt="twitter", owner="Mia")


KEYS = ["tweet", "id_str", "id", "created_at", "full_text", "text", "in_reply_to_status_id_str",
        "in_reply_to_screen_name", "entities", "extended_entities", "urls", "media", "user_mentions", "url",
        "expanded_url", "type", "retweeted", "deleted_at"]
SCALARS = st.none() | st.booleans() | st.integers(-10 ** 20, 10 ** 20) | st.floats() | st.text(max_size=12) | \
    st.sampled_from(["Sun May 14 21:03:00 +0000 2023", "RT @a: b", "@x @y hi", "https://t.co/abc", "&amp;"])
JSONISH = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=6),
                       max_leaves=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(JSONISH, max_size=5), prefix=st.sampled_from(["window.YTD.tweets.part0 = ", "", "x = "]),
       cut=st.integers(0, 300))
def test_any_json_is_tweets_or_one_input_error(tmp_path, records, prefix, cut):
    text = prefix + json.dumps(records)
    for body in (text, text[:cut]):
        path = write(tmp_path, body)
        try:
            result = import_file(path, fmt="twitter", owner="Mia")
        except InputError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path))
        else:
            assert all(m.is_owner and m.timestamp.tzinfo is not None for m in result.messages)
