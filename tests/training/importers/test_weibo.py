"""Weibo backups (weibo-crawler JSON and CSV, saved API pages, Weibo-archiver): the owner's posts."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.importers import weibo
from training.importers.detect import import_file
from training.importers.messages import Kind

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports"
CRAWLER = EXPORTS / "weibo" / "7412345678.json"
CRAWLER_CSV = EXPORTS / "weibo" / "7412345678.csv"
API_PAGE = EXPORTS / "weibo" / "mymblog_page1.json"
BEIJING = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def crawler():
    return import_file(CRAWLER, fmt="weibo", tz="Asia/Shanghai")


def by_id(result, post_id: str):
    return next(m for m in result.messages if m.message_id == post_id)


def test_crawler_json_posts_are_the_owners_named_by_the_export(crawler):
    assert crawler.stats.problems == [] and crawler.stats.records == 10
    assert {(m.platform, m.sender_id, m.sender_name, m.is_owner, m.chat_type) for m in crawler.messages} == {
        ("weibo", "7412345678", "米娅不吃香菜", True, "dm")}
    # Each post is a chat of its own, as an article is; the long one is cut into chunks.
    assert len({m.chat_id for m in crawler.messages}) == 10 < len(crawler.messages)
    assert crawler.stats.owner_messages == len(crawler.messages) - 1     # the repost without a comment


def test_owner_given_on_the_command_line_names_the_sender():
    result = import_file(CRAWLER, fmt="weibo", owner="Mia Chen")
    assert {(m.sender_id, m.sender_name) for m in result.messages} == {("7412345678", "Mia Chen")}


def test_oldest_first_in_beijing_time(crawler):
    first = crawler.messages[0]
    assert (first.text, first.kind) == ("早安☀️ 新的一周加油💪", Kind.TEXT)
    assert first.timestamp == datetime(2023, 8, 19, 8, 12, 40, tzinfo=BEIJING)
    assert first.timestamp.utcoffset() == timedelta(hours=8)
    stamps = [m.timestamp for m in crawler.messages]
    assert stamps == sorted(stamps)
    assert first.source.endswith("7412345678.json:weibo[9]")
    in_utc = import_file(CRAWLER, fmt="weibo", tz="UTC").messages[0].timestamp
    assert in_utc == first.timestamp and in_utc.hour == 0


@pytest.mark.parametrize("post_id, kind, text, extra", [
    ("4931000000000002", Kind.TEXT, "今天终于把《三体》看完了，太震撼了[泪]#三体#", {"source": "iPhone客户端"}),
    ("4931000000000003", Kind.MEDIA, "", {"source": "iPhone客户端", "media": ["photo"]}),   # "分享图片" only
    ("4931000000000004", Kind.FORWARD, "紧急扩散！明天上午山区有暴雨，徒步的朋友注意安全。",
     {"source": "iPhone客户端", "repost_of": "北京天气"}),
    ("4931000000000005", Kind.TEXT, "说得太对了，出门一定看天气", {"source": "iPhone客户端", "repost_of": "北京天气"}),
    ("4931000000000006", Kind.EMOJI, "[哈哈][哈哈][心]", {"source": "iPhone客户端"}),
    ("4931000000000007", Kind.TEXT, "第一次用胶片相机\n拍得还行吗？@李雷 & 小王", {"source": "iPhone客户端"}),
    ("4931000000000008", Kind.TEXT, "周末徒步路线整理好了，需要的自取", {"source": "iPhone客户端"}),   # t.cn dropped
    ("4931000000000009", Kind.TEXT, "山顶的风 视频记录一下", {"source": "iPhone客户端", "media": ["video"]}),
])
def test_kinds_texts_and_reposts(crawler, post_id, kind, text, extra):
    message = by_id(crawler, post_id)
    assert (message.kind, message.text, message.extra) == (kind, text, extra)


def test_a_long_post_is_cut_like_an_article(crawler):
    parts = [m for m in crawler.messages if m.chat_id == "4931000000000010"]
    assert len(parts) >= 2 and all(len(m.text) <= 750 for m in parts)
    assert [m.message_id for m in parts][:2] == ["4931000000000010#1", "4931000000000010#2"]
    title = parts[0].chat_name        # the first line, cut to 60 characters
    assert len(title) == 60 and title.endswith("…") and parts[0].text.startswith(title[:-1])
    assert parts[1].source.endswith("weibo[0] chunk 2")


def test_api_page_html_is_stripped_and_emoticons_kept():
    result = import_file(API_PAGE, fmt="weibo", tz="Asia/Shanghai")
    assert [(m.kind, m.text) for m in result.messages] == [
        (Kind.TEXT, "早起爬香山，人好多[允悲]"),
        (Kind.MEDIA, ""),
        (Kind.FORWARD, "周末谁去爬山？\n我开车，还能坐三个人"),      # "//@李雷:哈哈哈哈": nothing of hers
        (Kind.TEXT, "Reading list for the weekend"),
        (Kind.TEXT, "终于决定了：明年要去走一次川西环线。理由有三个：一是一直想看雪山；二是今年太累了，"
                    "需要给自己一个盼头；三是李雷说他也想去，有伴了 🏔️"),             # the long text, not the cut
    ]
    assert {m.sender_name for m in result.messages} == {"米娅不吃香菜"}
    assert result.messages[0].timestamp == datetime(2021, 2, 23, 7, 28, 47, tzinfo=BEIJING)
    assert result.messages[0].extra == {"source": "iPhone 13 Pro"}
    assert result.messages[2].extra["repost_of"] == "李雷"
    assert result.messages[0].source.endswith("mymblog_page1.json:data.list[4]")


def test_crawler_csv():
    result = import_file(CRAWLER_CSV, fmt="weibo", owner="米娅", tz="Asia/Shanghai")
    assert [(m.kind, m.text, m.timestamp.isoformat()) for m in result.messages] == [
        (Kind.TEXT, "开学第一天，已经想放假了[允悲]", "2023-09-01T07:15:00+08:00"),
        (Kind.TEXT, "中秋快乐🥮\n今年终于回家过节了", "2023-09-10T19:30:00+08:00"),
        (Kind.FORWARD, "今晚有流星雨，郊区观测条件最好。", "2023-09-12T08:00:00+08:00"),
    ]
    assert {m.sender_name for m in result.messages} == {"米娅"}
    assert result.messages[2].extra["repost_of"] == "北京天气"
    assert result.messages[0].source.endswith("7412345678.csv:line 5")
    assert result.messages[1].source.endswith("7412345678.csv:line 3")     # a two-line row: where it starts


def test_weibo_archiver_layout_and_other_peoples_posts(tmp_path):
    path = tmp_path / "weibo-data-米娅不吃香菜.json"
    path.write_text(json.dumps({
        "user": {"uid": "7412345678", "name": "米娅不吃香菜", "followers": 3},
        "posts": [
            {"id": "2", "mblogid": "Nb", "userId": "7412345678", "text": "周五！🎉", "createdAt":
             "Fri Sep 15 18:00:00 +0800 2023", "imgs": [], "source": "iPhone客户端", "comments": []},
            {"id": "1", "mblogid": "Na", "userId": "7412345678", "text": "转发微博", "createdAt":
             "Thu Sep 14 08:00:00 +0800 2023", "imgs": [], "comments": [],
             "retweet": {"id": "9", "mblogid": "Nz", "text": "原文在这里", "user": {"uid": "1", "name": "某人"}}},
            {"id": "3", "userId": "555", "text": "not hers", "createdAt": "Sat Sep 16 08:00:00 +0800 2023"},
        ],
        "favorites": [{"id": "8", "text": "someone else's", "createdAt": "Sat Sep 16 09:00:00 +0800 2023"}],
    }, ensure_ascii=False), encoding="utf-8")
    result = import_file(path, fmt="weibo")
    assert [(m.message_id, m.kind, m.text) for m in result.messages] == [
        ("1", Kind.FORWARD, "原文在这里"), ("2", Kind.TEXT, "周五！🎉")]
    assert result.stats.skipped == {"post by another account": 1}


def test_without_a_user_the_most_frequent_author_is_the_owner(tmp_path):
    def post(n, uid, name):
        return {"created_at": f"Tue Feb 2{n} 12:00:00 +0800 2021", "id": n, "text": f"post {n}",
                "user": {"idstr": uid, "screen_name": name}}
    path = tmp_path / "posts.json"
    path.write_text(json.dumps([post(1, "7", "米娅"), post(2, "8", "路人"), post(3, "7", "米娅")]))
    result = import_file(path, fmt="weibo")
    assert [m.text for m in result.messages] == ["post 1", "post 3"]
    named = import_file(path, fmt="weibo", owner="路人")
    assert [(m.text, m.sender_name) for m in named.messages] == [("post 2", "路人")]


def test_old_crawler_dates_without_a_time(tmp_path):
    path = tmp_path / "1.json"
    path.write_text(json.dumps({"user": {"id": "1", "screen_name": "米娅"},
                                "weibo": [{"user_id": 1, "id": 5, "text": "旧微博", "created_at": "2019-12-28"}]}))
    (message,) = import_file(path, fmt="weibo").messages
    assert message.timestamp == datetime(2019, 12, 28, tzinfo=BEIJING)


def test_sniff_scores_weibo_backups_and_not_other_exports():
    for path in (CRAWLER, CRAWLER_CSV, API_PAGE):
        assert weibo.sniff(path.read_text(encoding="utf-8-sig")) >= 3
    others = [EXPORTS / "telegram" / "result.json", EXPORTS / "twitter" / "data" / "tweets.js",
              EXPORTS / "sharegpt" / "persona_dataset.jsonl", EXPORTS / "wechat" / "小明_utf8.csv",
              *sorted((EXPORTS / "meta").rglob("*.json"))]
    assert [weibo.sniff(p.read_text(encoding="utf-8-sig")) for p in others] == [0] * len(others)


def write(tmp_path: Path, body: str, name: str = "weibo.json") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize("body, error", [
    ('"just a string"', r"weibo.json: is not a Weibo backup \(expected a JSON object or list"),
    ('{"ok": 1}', r"weibo.json: has no list of posts"),
    ('{"weibo": [{"id": 1}]}', r"weibo.json: weibo\[0\]: is not a Weibo post"),
    ('{"weibo": [{"id": 1, "text": "a", "created_at": "next week"}]}',
     r"weibo.json: weibo\[0\]: created_at 'next week' is not a date"),
    ('{"weibo": [{"id": 1, "text": "a", "created_at": "2023-02-30"}]}', r"created_at '2023-02-30' is not a date"),
    ('[{"data": {"list": [5]}}]', r"weibo.json: \[0\].data.list\[0\]: is not a Weibo post"),
    ('{"weibo": [{"id": 1, "text": "a', r"weibo.json: line 1: the file ends inside weibo\[0\]"),
])
def test_bad_files_are_one_line_errors(tmp_path, body, error):
    with pytest.raises(InputError, match=error):
        import_file(write(tmp_path, body), fmt="weibo")


def test_bad_csv_rows_name_their_line(tmp_path):
    path = write(tmp_path, "id,正文,日期\n1,你好,2023-01-01T10:00:00\n2,坏行\n", "1.csv")
    with pytest.raises(InputError, match=r"1.csv: line 3: has 2 field\(s\) but the header has 3"):
        import_file(path, fmt="weibo")
    with pytest.raises(InputError, match=r"2.csv: line 1: is not a weibo-crawler CSV"):
        import_file(write(tmp_path, "a,b\n1,2\n", "2.csv"), fmt="weibo")


KEYS = ["user", "weibo", "posts", "data", "list", "cards", "mblog", "statuses", "card_type", "created_at",
        "createdAt", "text", "text_raw", "retweeted_status", "retweet", "longText", "longTextContent", "source",
        "pics", "pic_num", "page_info", "type", "id", "idstr", "screen_name", "uid", "name", "user_id"]
SCALARS = st.none() | st.booleans() | st.integers(-10 ** 20, 10 ** 20) | st.floats() | st.text(max_size=12) | \
    st.sampled_from(["Tue Feb 23 12:28:47 +0800 2021", "2023-08-21T09:23:03", "转发微博", "a//@b:c",
                     "<br /><img alt='[哈哈]'>", "http://t.cn/A6x"])
JSONISH = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=6),
                       max_leaves=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=JSONISH, cut=st.integers(0, 300))
def test_any_json_is_posts_or_one_input_error(tmp_path, data, cut):
    text = json.dumps(data, ensure_ascii=False)
    for body in (text, text[:cut]):
        path = write(tmp_path, body)
        try:
            result = import_file(path, fmt="weibo")
        except InputError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path))
        else:
            assert all(m.is_owner and m.timestamp.tzinfo is not None for m in result.messages)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(st.text(max_size=10), min_size=1, max_size=4), max_size=4))
def test_any_csv_is_posts_or_one_input_error(tmp_path, rows):
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer).writerows([["id", "正文", "日期"], *rows])
    path = write(tmp_path, buffer.getvalue(), "1.csv")
    try:
        import_file(path, fmt="weibo")
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))
