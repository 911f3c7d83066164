"""The owner's own posts from a Weibo backup, as long-form voice (like blog articles and tweets).

Weibo has no export of its own; people back up with tools, and this reads what the common ones
write (the layout is told by its keys, not the file name):

- weibo-crawler (dataabc), ``<user_id>.json``: ``{"user": {id, screen_name}, "weibo": [{id, bid,
  text, pics, video_url, created_at ("2023-08-21T09:23:03"; older ones "2019-12-28"), source,
  reposts_count, retweet{...}}]}``, and its default ``<user_id>.csv`` (``id, bid, 正文, 原始图片url,
  视频url, 日期, 工具, ..., 完整日期, 是否原创, 源用户昵称, 源微博正文, ...``);
- the API records backup scripts save as they are (weibo.com ``statuses/mymblog``, m.weibo.cn):
  a list of posts, a page ``{"data": {"list": [...]}}`` or ``{"data": {"cards": [{"mblog": ...}]}}``,
  or a list of pages; posts have ``created_at`` ("Tue Feb 23 12:28:47 +0800 2021"), ``text`` (HTML)
  and ``text_raw``, ``retweeted_status``, ``source``, ``user{idstr, screen_name}``,
  ``longText.longTextContent``, ``pic_num``;
- Weibo-archiver's ``weibo-data-<name>.json``: ``{"user": {uid, name}, "posts": [{id, mblogid,
  text, createdAt, source, imgs, retweet}]}``.

Each post is a one-author "chat" of the owner's, as an article is: HTML is stripped (emoticons keep
their ``[笑cry]`` code, which carries the tone), t.cn links are dropped, long posts are cut like
articles. A repost's original, and the ``//@someone:`` chain of other people's comments, are not
the owner's words: a repost the owner wrote nothing on is FORWARD (the original as its text), one
with a comment keeps only that comment. Posts by other accounts in the file are skipped. Times
without a zone are Beijing time, as Weibo shows them.

Tested in ``tests/training/importers/test_weibo.py``.
"""

from __future__ import annotations

import csv
import html
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from training.importers.base import Source, clean_name, clean_text, detect_encoding, iter_lines, text_kind
from training.importers.json_stream import JsonStream
from training.importers.messages import Kind, Message
from training.importers.twitter import chunks, parse_created_at, title_of

BEIJING = timezone(timedelta(hours=8), "CST")
_LISTS = ("weibo", "posts", "list", "statuses", "cards", "mblogs", "data")
_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?)?")
_BREAK = re.compile(r"<br\s*/?>", re.I)
_IMG_ALT = re.compile(r"""<img\b[^>]*?\balt=(["'])(.*?)\1[^>]*>""", re.I | re.S)
_TAG = re.compile(r"<[a-zA-Z/][^>]*>")
_TCN = re.compile(r"https?://t\.cn/[A-Za-z0-9]+")
# What the web page writes instead of a link or a cut: not the owner's words.
_LINK_WORDS = re.compile(r"网页链接|(?:\.\.\.|…)\s*全文$|\s*展开$|(?<!\S)\S{1,30}的微博视频$")
# The text Weibo fills in when the owner wrote nothing.
_DEFAULT_TEXTS = frozenset({"转发微博", "轉發微博", "Repost", "分享图片", "分享圖片", "分享视频", "分享視頻"})
_SPACES = re.compile(r"[ \t]{2,}")
_MARKERS = ("\"text_raw\"", "\"mblogid\"", "\"reposts_count\"", "\"attitudes_count\"", "\"retweeted_status\"",
            "\"isLongText\"", "\"screen_name\"", "+0800 ", "\"repostsCount\"", "\"pic_num\"")
_CSV_COLUMNS = ("正文", "原始图片url", "转发数", "点赞数", "完整日期", "源微博正文", "头条文章url")


def sniff(head: str) -> int:
    """How much ``head`` looks like a Weibo backup: its JSON keys, or weibo-crawler's CSV header."""
    first = head.lstrip("\ufeff").split("\n", 1)[0]
    if first.startswith(("id,", "\"id\",")):
        return sum(1 for name in _CSV_COLUMNS if name in first)
    if not head.lstrip("\ufeff \t\r\n").startswith(("{", "[")):
        return 0
    score = sum(1 for marker in _MARKERS if marker in head)
    # Twitter's API records share created_at/text/screen_name; these keys are Weibo's alone.
    weibo_only = any(key in head for key in ("\"text_raw\"", "\"mblogid\"", "\"attitudes_count\"", "+0800 ",
                                             "\"repostsCount\"", "\"reposts_count\""))
    return score if weibo_only and score >= 2 else 0


@dataclass(slots=True)
class _Post:
    id: str
    where: str
    stamp: datetime
    text: str
    kind: Kind
    author: tuple[str, str]            # (id, name); "" where the layout does not say
    extra: dict = field(default_factory=dict)


def parse(src: Source) -> Iterator[Message]:
    src.stats.owner_marked = True
    user: dict[str, Any] = {}
    posts = list(_csv_posts(src) if src.path.suffix.lower() == ".csv" else _json_posts(src, user))
    owner_id, owner_name = _author(user) if user else _likely_owner(posts, src)
    name = src.owner.names[0] if src.owner else owner_name or "owner"
    posts.sort(key=lambda p: (p.stamp, p.id))
    for post in posts:
        if owner_id and post.author[0] and post.author[0] != owner_id:
            src.skip("post by another account")
            continue
        parts = chunks(post.text)
        title = title_of(post.text, f"微博 {post.id}")
        for index, text in enumerate(parts, 1):
            many = len(parts) > 1
            yield Message(platform="weibo", chat_id=post.id or post.where, chat_name=title, chat_type="dm",
                          sender_id=owner_id or name, sender_name=name, is_owner=True,
                          timestamp=post.stamp.astimezone(src.tz), text=text, kind=post.kind,
                          message_id=f"{post.id}#{index}" if many else post.id,
                          source=src.where(f"{post.where} chunk {index}" if many else post.where), extra=post.extra)


def _likely_owner(posts: list[_Post], src: Source) -> tuple[str, str]:
    """The account whose posts these are: the one ``--owner`` names, else the most frequent author."""
    authors = Counter(p.author for p in posts if p.author[0])
    named = [a for a in authors if src.owner and src.owner.matches(*a)]
    best = named[0] if named else authors.most_common(1)[0][0] if authors else ("", "")
    return best


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else ""


def _author(user: Any) -> tuple[str, str]:
    if not isinstance(user, dict):
        return "", ""
    uid = _string(user.get("idstr")) or _string(user.get("id")) or _string(user.get("uid"))
    return uid, clean_name(_string(user.get("screen_name")) or _string(user.get("name")))


# -- reading ----------------------------------------------------------------------------------

def _json_posts(src: Source, user: dict[str, Any]) -> Iterator[_Post]:
    try:
        handle = src.path.open("rb")
    except OSError as exc:
        raise src.error(None, f"cannot read: {exc.strerror or exc}") from None
    found = False
    with handle:
        stream = JsonStream(handle, src.name)
        kind = stream.peek_type()
        if kind == "array":
            found = True
            for index in stream.array_items():
                yield from _posts_in(stream.value(), f"[{index}]", src)
        elif kind == "object":
            for key in stream.object_items():
                if key == "user":
                    value = stream.value()
                    user.update(value if isinstance(value, dict) else {})
                elif key in _LISTS and stream.peek_type() == "array":
                    found = True
                    for index in stream.array_items():
                        yield from _posts_in(stream.value(), f"{key}[{index}]", src)
                elif key in _LISTS:
                    found = True
                    yield from _posts_in(stream.value(), key, src)
                else:
                    stream.skip()
        else:
            raise src.error(None, "is not a Weibo backup (expected a JSON object or list at the top)")
        stream.finish()
    if not found:
        raise src.error(None, "has no list of posts ('weibo', 'posts', 'data.list', 'statuses'...): "
                              "not a Weibo backup")


def _is_post(value: Any) -> bool:
    return isinstance(value, dict) and ("created_at" in value or "createdAt" in value) and \
        ("text" in value or "text_raw" in value)


def _posts_in(value: Any, where: str, src: Source, depth: int = 0) -> Iterator[_Post]:
    """The posts in a decoded value: a post, an API card or page, or a list of them."""
    if isinstance(value, dict) and isinstance(value.get("mblog"), dict):
        value, where = value["mblog"], f"{where}.mblog"       # m.weibo.cn wraps posts in cards
    if _is_post(value):
        post = _post(value, where, src)
        if post is not None:
            yield post
    elif value is None:
        return                                                  # an API page with "data": null
    elif depth > 4:
        raise src.error(where, "is nested too deep for a Weibo backup")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _posts_in(item, f"{where}[{index}]", src, depth + 1)
    elif isinstance(value, dict) and any(key in value for key in _LISTS):
        for key in _LISTS:
            if key in value:
                yield from _posts_in(value[key], f"{where}.{key}", src, depth + 1)
    elif isinstance(value, dict) and "card_type" in value:
        src.skip("API card without a post")
    else:
        src.stats.records += 1
        raise src.error(where, "is not a Weibo post (it has no created_at and text)")


def _csv_posts(src: Source) -> Iterator[_Post]:
    encoding = detect_encoding(src, ("utf-8-sig", "gb18030"))
    reader = csv.reader(text for _, text in iter_lines(src, encoding, keepends=True))
    try:
        header = [name.strip().lstrip("\ufeff") for name in next(reader)]
        if "正文" not in header or not {"日期", "完整日期"} & set(header):
            raise src.error(1, f"is not a weibo-crawler CSV: no 正文 and 日期 columns (found: {', '.join(header)})")
        while True:
            line = reader.line_num + 1              # where the row starts: a quoted field may span lines
            row = next(reader, None)
            if row is None:
                return
            if not row:
                continue
            if len(row) != len(header):
                src.stats.records += 1
                raise src.error(line, f"has {len(row)} field(s) but the header has {len(header)}")
            cells = dict(zip(header, row, strict=True))
            record: dict[str, Any] = {"id": cells.get("id", ""), "text": cells["正文"],
                                      "created_at": cells.get("完整日期") or cells.get("日期", ""),
                                      "pics": cells.get("原始图片url", ""), "video_url": cells.get("视频url", ""),
                                      "source": cells.get("工具", "")}
            if cells.get("源微博正文") or cells.get("源用户id"):
                record["retweet"] = {"screen_name": cells.get("源用户昵称", ""), "text": cells.get("源微博正文", "")}
            post = _post(record, f"line {line}", src)
            if post is not None:
                yield post
    except StopIteration:
        raise src.error(None, "the file is empty") from None
    except csv.Error as exc:
        raise src.error(reader.line_num, f"is not valid CSV ({exc})") from None


# -- one post ---------------------------------------------------------------------------------

def _text(record: dict) -> str:
    """The post's words: the long text where the record has it, HTML and t.cn links removed."""
    long = record.get("longText")
    text = long.get("longTextContent") if isinstance(long, dict) else None
    if not isinstance(text, str):
        text = record.get("text_raw") if isinstance(record.get("text_raw"), str) else record.get("text")
    text = text if isinstance(text, str) else ""
    if _TAG.search(text):
        text = _IMG_ALT.sub(lambda m: m.group(2), _BREAK.sub("\n", text))
        text = html.unescape(_TAG.sub("", text))
    if "t.cn/" in text:
        text = _TCN.sub("", text)
    if "网页链接" in text or "全文" in text or "展开" in text or "的微博视频" in text:
        text = _LINK_WORDS.sub("", text)
    if "  " in text or " \n" in text:
        text = _SPACES.sub(" ", text).replace(" \n", "\n")
    return clean_text(text)


def _stamp(record: dict, where: str, src: Source) -> datetime:
    value = record.get("full_created_at") or record.get("created_at") or record.get("createdAt")
    stamp = parse_created_at(value)
    if stamp is not None:
        return stamp
    match = _DATE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match:
        year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
        try:
            return datetime(year, month, day, hour, minute, second, tzinfo=BEIJING)
        except ValueError:
            pass
    raise src.error(where, f"created_at {value!r} is not a date ('2023-08-21T09:23:03' or "
                           "'Tue Feb 23 12:28:47 +0800 2021')")


def _media(record: dict) -> list[str]:
    media = []
    if record.get("pics") or record.get("imgs") or record.get("pic_ids") or \
            (isinstance(record.get("pic_num"), int) and record["pic_num"] > 0):
        media.append("photo")
    page = record.get("page_info")
    if record.get("video_url") or (isinstance(page, dict) and page.get("type") == "video"):
        media.append("video")
    return media


def _post(record: dict, where: str, src: Source) -> _Post | None:
    src.stats.records += 1
    stamp = _stamp(record, where, src)
    text = _text(record)
    extra: dict[str, Any] = {}
    source = _string(record.get("source"))
    if source:
        extra["source"] = clean_text(html.unescape(_TAG.sub("", source)))
    media = _media(record)
    if media:
        extra["media"] = media
    original = record.get("retweeted_status") or record.get("retweet")
    kind = None
    if isinstance(original, dict) and original:
        extra["repost_of"] = _author(original.get("user"))[1] or clean_name(_string(original.get("screen_name")))
        # "my words//@B: B's words": what follows the first //@ is other people's.
        text = clean_text(text.split("//@", 1)[0])
        if not text or text in _DEFAULT_TEXTS:
            kind, text = Kind.FORWARD, _text(original)
    elif text in _DEFAULT_TEXTS:
        text = ""
    if kind is None:
        if text:
            kind = text_kind(text)
        elif media:
            kind = Kind.MEDIA
        else:
            src.skip("post with no text")
            return None
    post_id = next((v for v in map(_string, (record.get("idstr"), record.get("mid"), record.get("id"),
                                             record.get("mblogid"), record.get("bid"))) if v), "")
    author = _author(record.get("user"))
    if not author[0]:
        author = (_string(record.get("user_id")) or _string(record.get("userId")),
                  clean_name(_string(record.get("screen_name"))))
    return _Post(post_id, where, stamp, text, kind, author, extra)
