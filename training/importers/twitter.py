"""The owner's own posts from an X/Twitter archive (``data/tweets.js``), as long-form voice.

``tweets.js`` is JavaScript around JSON: ``window.YTD.tweets.part0 = [{"tweet": {id_str, created_at,
full_text, in_reply_to_status_id_str, in_reply_to_screen_name, entities{urls, user_mentions,
media}, retweeted, ...}}, ...]``. Older archives name it ``tweet.js`` (``window.YTD.tweet.part0``,
records without the ``tweet`` wrapper); big ones continue in ``tweets-part1.js``; deleted tweets
are in ``deleted-tweets.js`` with the same records. The array is streamed record by record.

Every tweet in an archive is the owner's, so the import has the shape of blog articles
(``training.importers.articles``): each thread of the owner's tweets (a tweet and the owner's
replies to it) is a one-author "chat" whose messages are the owner's, oldest first, Kind TEXT (or
EMOJI), a tweet over 750 characters cut like an article. What is not the owner's wording is
removed or set apart: retweets (``RT @name: ...``) are FORWARD, replies lose the leading
``@mentions`` Twitter adds, and t.co links are dropped as link targets are from articles (the
expanded URLs go to ``extra["links"]``); a tweet that was only a link or a photo is MEDIA with no
text. The owner's name comes from ``--owner``, else from the archive's ``account.js`` next to
the file.

Tested in ``tests/training/importers/test_twitter.py``; ``parse_created_at`` also in
``tests/training/importers/test_weibo.py`` (Weibo writes dates the same way).
"""

from __future__ import annotations

import codecs
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from training.importers.articles import TARGET_CHARS, split_text
from training.importers.base import Source, clean_name, clean_text, text_kind
from training.importers.json_stream import JsonStream
from training.importers.messages import Kind, Message

LONG_POST = TARGET_CHARS + TARGET_CHARS // 2          # longer than this, a post is cut like an article
_PREFIX = re.compile(rb"\s*window\.YTD\.(\w+)\.part\d+\s*=\s*")
_TWEET_FILES = frozenset({"tweets", "tweet", "deleted_tweets", "community_tweet"})
_SNIFF = re.compile(r"\s*window\.YTD\.(?:tweets?|deleted_tweets|community_tweet)\.part\d+\s*=\s*\[")
_RETWEET = re.compile(r"RT @(\w{1,50}):\s*")
# Twitter puts the people a reply answers in front of its text; they are not what the owner wrote.
_LEADING_MENTIONS = re.compile(r"\s*(?:[@＠]\w{1,50}(?:\s+|$))+")
_TCO = re.compile(r"https?://t\.co/[A-Za-z0-9]+")
_SPACES = re.compile(r"[ \t]{2,}")
_CREATED = re.compile(r"[A-Z][a-z]{2} ([A-Z][a-z]{2}) (\d{1,2}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2}) (\d{4})")
_ZONES: dict[str, timezone] = {}      # "+0800" -> its tzinfo, made once
_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def sniff(head: str) -> int:
    """How much ``head`` looks like an archive's tweets file (0: not at all, nor the archive's other files)."""
    if not _SNIFF.match(head.lstrip("\ufeff")):
        return 0
    return 10 + min(head.count('"full_text"'), 90)


def parse_created_at(value: Any) -> datetime | None:
    """``Sun May 14 21:03:00 +0000 2023`` (Twitter's and Weibo's API dates) as an aware datetime.

    Read by hand: ``strptime``'s ``%a %b`` follow the machine's locale.
    """
    match = _CREATED.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match or match.group(1) not in _MONTHS:
        return None
    month, day, hour, minute, second, sign, off_h, off_m, year = match.groups()
    try:
        zone = _ZONES.get(sign + off_h + off_m)
        if zone is None:
            offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
            zone = _ZONES[sign + off_h + off_m] = timezone(offset)
        return datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=zone)
    except (ValueError, OverflowError):
        return None


def title_of(text: str, fallback: str) -> str:
    """A post's "chat" name: its first line, cut to 60 characters."""
    first = text.strip().partition("\n")[0].strip()
    # No NFKC here (unlike names): it would turn "！" into "!" and "…" into "...".
    first = " ".join(first.split())
    return (first if len(first) <= 60 else first[:59].rstrip() + "…") or fallback


def chunks(text: str) -> list[str]:
    return split_text(text) if len(text) > LONG_POST else [text]


@dataclass(slots=True)
class _Tweet:
    id: str
    where: str
    stamp: datetime
    text: str
    kind: Kind
    parent: str = ""
    extra: dict = field(default_factory=dict)


def parse(src: Source) -> Iterator[Message]:
    src.stats.owner_marked = True
    account = _account(src)
    owner = src.owner.names[0] if src.owner else account.get("accountDisplayName") or account.get("username") or "owner"
    owner_id = f"@{account['username']}" if account.get("username") else owner
    tweets = [t for where, record in _records(src) if (t := _tweet(record, where, src)) is not None]
    own = {t.id: t for t in tweets if t.id and t.kind is not Kind.FORWARD}
    threads: dict[str, list[_Tweet]] = {}
    for tweet in tweets:
        threads.setdefault(_root(tweet, own), []).append(tweet)
    for thread in threads.values():
        thread.sort(key=lambda t: (t.stamp, len(t.id), t.id))
    for root_id, thread in sorted(threads.items(), key=lambda item: item[1][0].stamp):
        name = title_of(thread[0].text, f"tweet {root_id}")
        for tweet in thread:
            parts = chunks(tweet.text)
            for index, text in enumerate(parts, 1):
                many = len(parts) > 1
                yield Message(platform="twitter", chat_id=root_id, chat_name=name, chat_type="dm",
                              sender_id=owner_id, sender_name=owner, is_owner=True,
                              timestamp=tweet.stamp.astimezone(src.tz), text=text, kind=tweet.kind,
                              message_id=f"{tweet.id}#{index}" if many else tweet.id, reply_to=tweet.parent,
                              source=src.where(f"{tweet.where} chunk {index}" if many else tweet.where),
                              extra=tweet.extra)


def _root(tweet: _Tweet, own: dict[str, _Tweet]) -> str:
    """The first tweet of the owner's thread that ``tweet`` is in (itself when it starts one)."""
    seen = {tweet.id}
    while tweet.parent in own and tweet.parent not in seen:
        tweet = own[tweet.parent]
        seen.add(tweet.id)
    return tweet.id or tweet.where


def _records(src: Source) -> Iterator[tuple[str, Any]]:
    try:
        handle = src.path.open("rb")
    except OSError as exc:
        raise src.error(None, f"cannot read: {exc.strerror or exc}") from None
    with handle:
        head = handle.read(4096)
        start = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
        match = _PREFIX.match(head, start)
        if match:
            if match.group(1).decode() not in _TWEET_FILES:
                raise src.error(None, f"is the archive's {match.group(1).decode()!r} file, not its tweets "
                                      "(import data/tweets.js)")
            start = match.end()
        elif not head[start:].lstrip().startswith(b"["):
            raise src.error(None, "is not an X/Twitter archive tweets file (it should start with "
                                  "'window.YTD.tweets.part0 = [')")
        handle.seek(start)
        # The stream starts on the prefix's line, so its line numbers are the file's.
        stream = JsonStream(handle, src.name)
        if stream.peek_type() != "array":
            raise src.error(None, "does not hold a list of tweets after 'window.YTD...='")
        for index in stream.array_items():
            yield f"tweet[{index}]", stream.value()
        stream.finish()


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else ""


def _dicts(value: Any) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _tweet(record: Any, where: str, src: Source) -> _Tweet | None:
    src.stats.records += 1
    if not isinstance(record, dict):
        raise src.error(where, "a tweet is not a JSON object")
    tweet = record.get("tweet", record)
    if not isinstance(tweet, dict):
        raise src.error(where, "'tweet' is not a JSON object")
    stamp = parse_created_at(tweet.get("created_at"))
    if stamp is None:
        raise src.error(where, f"created_at {tweet.get('created_at')!r} is not a date like "
                               "'Sun May 14 21:03:00 +0000 2023'")
    raw = tweet.get("full_text", tweet.get("text"))
    text = raw if isinstance(raw, str) else ""
    if "&" in text:
        text = html.unescape(text)                   # the archive keeps &amp; &lt; &gt;
    entities = tweet.get("entities") if isinstance(tweet.get("entities"), dict) else {}
    extended = tweet.get("extended_entities") if isinstance(tweet.get("extended_entities"), dict) else {}
    extra: dict[str, Any] = {}
    if "deleted_at" in tweet:
        extra["deleted"] = True
    parent = _string(tweet.get("in_reply_to_status_id_str")) or _string(tweet.get("in_reply_to_status_id"))
    retweet = _RETWEET.match(text) if text.startswith("RT @") else None
    forward = bool(retweet) or tweet.get("retweeted") is True
    if forward:
        extra["retweet_of"] = retweet.group(1) if retweet else ""
        text = text[retweet.end():] if retweet else text
        parent = ""
    elif parent:
        extra["in_reply_to"] = _string(tweet.get("in_reply_to_screen_name"))
        mentions = _LEADING_MENTIONS.match(text)
        text = text[mentions.end():] if mentions else text
    urls = entities.get("urls")
    links = [_string(u.get("expanded_url")) or _string(u.get("url")) for u in _dicts(urls)] if urls else []
    if any(links):
        extra["links"] = [link for link in links if link]
    attached = extended.get("media") or entities.get("media")
    media = [_string(m.get("type")) or "photo" for m in _dicts(attached)] if attached else []
    if media:
        extra["media"] = media
    if "t.co/" in text:
        text = _SPACES.sub(" ", _TCO.sub("", text)).replace(" \n", "\n")
    text = clean_text(text)
    if forward:
        kind = Kind.FORWARD
    elif text:
        kind = text_kind(text)
    elif media or links:
        kind = Kind.MEDIA
    else:
        src.skip("tweet with no text of the owner's")
        return None
    tweet_id = _string(tweet.get("id_str")) or _string(tweet.get("id"))
    return _Tweet(tweet_id, where, stamp, text, kind, parent, extra)


def _account(src: Source) -> dict[str, str]:
    """username, accountId and accountDisplayName from ``account.js`` beside the file, if it is there."""
    path = src.path.with_name("account.js")
    try:
        if not path.is_file() or path.stat().st_size > 1024 * 1024:
            return {}
        raw = path.read_bytes().removeprefix(codecs.BOM_UTF8)
        match = _PREFIX.match(raw)
        records = json.loads(raw[match.end():] if match else raw)
        account = records[0]["account"]
    except (OSError, ValueError, LookupError, TypeError, RecursionError):
        src.stats.notes.append(f"{path.name}: could not be read; the owner's name comes from --owner")
        return {}
    if not isinstance(account, dict):
        return {}
    # Only the names: the file also holds the e-mail address, which an import has no use for.
    return {key: clean_name(account[key]) for key in ("username", "accountId", "accountDisplayName")
            if isinstance(account.get(key), str) and account[key].strip()}

