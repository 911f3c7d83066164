"""Data pipeline benchmark: a 100,000-message Telegram export through import, clean, scrub and build.

What it does:

1. writes a synthetic but realistic Telegram Desktop full-account export (``result.json`` with
   ``personal_information`` and ``chats.list``): DMs and groups, Chinese and English lines, bursts
   and quiet hours, stickers, photos with and without captions, voice messages, service messages,
   forwards, text as a plain string or as an entity list, and private values (phones, e-mails,
   IDs, cards, addresses...) in about 2% of messages. Seeded: the same file every run.
2. in a fresh Python process (so the peak memory is the pipeline's, not the generator's) runs
   ``training.importers.detect.import_path`` on it, then ``training.dataset.build.build_dataset`` (clean, scrub,
   sessions, samples with the character estimate, report and chart), timing each stage.
3. prints seconds per stage, total seconds, messages/s and the peak resident memory of the
   measuring process (``peak_rss_mb``), against the targets from the issue: under 10 s and
   under 1 GB for 100,000 messages. ``--json PATH`` also writes the figures.
4. the per-format table (``--formats``, default all): for each format that
   ``training.importers.detect.FORMATS`` lists (WhatsApp twice: its text file and the phone's zip),
   an export of ``--messages`` messages in that format's own layout, from a small generator per
   format: several chats (one file per chat where the tool writes one), the owner speaking about
   half the time, chat-length texts with some long and multi-line ones, and the format's media
   placeholders, notices, quotes and quirks. In a fresh process, ``import_path`` on it runs
   ``--repeat`` times (best and median), each time after reading the same files' lines with plain
   Python (the baseline: I/O and decoding, nothing parsed). Target: >= 50,000 messages/s per
   format. An export that is not detected as its own format fails its row.
5. the mixed directory (unless ``--no-mixed``): a slice of every format, ``--messages`` in all, in
   one folder, through ``import_path`` and ``build_dataset`` in a fresh process. Target: under 10 s
   for 100,000 messages.

The machine's load average (``/proc/loadavg``) is recorded next to each figure: on a shared
machine the absolute numbers move with it, the ratios less. The exit status is 1 when a target
is missed. JSON keys (``--json``): the pipeline's as before (``messages``, ``total_s``,
``stages_s``, ``peak_rss_mb``...), plus ``formats`` (one entry per row), ``mixed`` and ``load_average``.

Run from the repository root::

    .venv/bin/python benchmarks/data_pipeline.py [--messages 100000] [--formats all|none|a,b] [--no-mixed]
        [--repeat 3] [--keep DIR] [--json out.json]
    .venv/bin/python benchmarks/data_pipeline.py --messages 20000 --formats qq,line --no-mixed   # a quick look
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 10.0
TARGET_PEAK_MB = 1024.0
TARGET_RATE = 50_000          # messages/s for import alone, every format
OWNER_ID = 100001
SEED = 42

ZH_LINES = ("在吗", "哈哈哈哈哈", "今晚吃什么", "好的好的", "明天见！", "我到了，你下来吧", "这也太离谱了吧", "晚点说",
            "收到", "你们去哪了", "今天好累啊", "周末爬山去不去", "笑死", "真的假的", "我刚下班", "等我五分钟",
            "这个怎么弄啊", "你看群里那个链接了吗", "我觉得还行吧", "算了算了", "下次一定", "饿了", "买了买了",
            "明天几点集合", "你先去吧我马上到", "啊这", "绝了", "好耶", "辛苦了", "早点睡")
EN_LINES = ("lol", "omg same", "brb", "ok see you at 7", "that's wild", "np!", "who's in for pizza",
            "running 10 min late", "happy birthday!!", "wait what", "sounds good", "can't tonight sorry",
            "did you see the game", "I'm so tired", "let's do saturday", "haha yes", "no way", "on my way",
            "send pics", "miss you guys", "what time works", "I'll bring snacks", "good night", "thanks!")
EMOJI = ("😂", "👍", "🙏", "😭", "🎉", "❤️", "🤣", "😅")
ZH_STICKERS = ("[捂脸]", "[旺柴]", "[破涕为笑]", "[OK]", "[强]")
NAMES = ("Ann Lee", "Bob Smith", "陈晓明", "王芳", "Chris Wu", "李娜", "Dana Park", "张伟", "Eve Zhou", "刘洋",
         "Frank Li", "赵敏", "Grace Ho", "孙悦", "Henry Xu", "周杰", "Ivy Tan", "吴磊", "Jack Ma", "郑爽")


def _pii_line(rng: random.Random) -> str:
    from training.pii_eval.fakes import card, cn_address, cn_id, cn_mobile, email, intl_phone

    return rng.choice((
        f"我手机号{cn_mobile(rng)}，到了打给我", f"call me at {intl_phone(rng)}", f"发我邮箱 {email(rng)}",
        f"身份证号 {cn_id(rng)}", f"卡号{card(rng)}", f"寄到{cn_address(rng)}",
        f"wifi密码是 abc{rng.randint(1000, 9999)}",
    ))


def _text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.02:
        return _pii_line(rng)
    line = rng.choice(ZH_LINES if rng.random() < 0.6 else EN_LINES)
    if rng.random() < 0.15:
        line += rng.choice(EMOJI)
    if rng.random() < 0.1:
        line = f"{line} {rng.choice(ZH_LINES + EN_LINES)}"
    return line


def _record(rng: random.Random, number: int, at: int, sender: tuple[str, int]) -> dict:
    name, user = sender
    record = {"id": number, "type": "message", "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)),
              "date_unixtime": str(at), "from": name, "from_id": f"user{user}"}
    roll = rng.random()
    if roll < 0.01:
        return {"id": number, "type": "service", "date": record["date"], "date_unixtime": str(at), "actor": name,
                "actor_id": f"user{user}", "action": rng.choice(("pin_message", "invite_members", "phone_call")),
                "text": "", "text_entities": []}
    if roll < 0.06:
        record.update(media_type="sticker", sticker_emoji=rng.choice(EMOJI), file="stickers/sticker.webp",
                      text="", text_entities=[])
    elif roll < 0.09:
        caption = _text(rng) if rng.random() < 0.3 else ""
        record.update(photo=f"photos/photo_{number}.jpg", width=1280, height=960, text=caption,
                      text_entities=[{"type": "plain", "text": caption}] if caption else [])
    elif roll < 0.11:
        record.update(media_type="voice_message", file=f"voice_messages/audio_{number}.ogg", duration_seconds=7,
                      text="", text_entities=[])
    elif roll < 0.13:
        text = "Forwarded: " + _text(rng)
        record.update(forwarded_from=rng.choice(NAMES), text=text, text_entities=[{"type": "plain", "text": text}])
    else:
        text = rng.choice(ZH_STICKERS) if rng.random() < 0.03 else _text(rng)
        if rng.random() < 0.1:
            record["text"] = [text[: len(text) // 2], {"type": "bold", "text": text[len(text) // 2:]}]
        else:
            record["text"] = text
        record["text_entities"] = [{"type": "plain", "text": text}]
    return record


def generate_export(path: Path, messages: int, seed: int = SEED) -> None:
    """A Telegram full-account export of about ``messages`` messages across DMs and groups."""
    rng = random.Random(seed)
    owner = ("Mia Chen", OWNER_ID)
    people = [(name, 200000 + i) for i, name in enumerate(NAMES)]
    chats = []
    for i, person in enumerate(people):
        chats.append({"name": person[0], "type": "personal_chat", "id": person[1], "members": [owner, person]})
        if i % 4 == 0:
            members = [owner, *rng.sample(people, rng.randint(3, 8))]
            chats.append({"name": f"群聊 {i}" if i % 8 else f"Group {i}", "type": "private_supergroup",
                          "id": 900000 + i, "members": members})
    weights = [rng.uniform(0.3, 3.0) for _ in chats]
    shares = [round(messages * w / sum(weights)) for w in weights]
    shares[0] += messages - sum(shares)
    number = 1
    with path.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"about": "Here is the data you requested.",
                                 "personal_information": {"user_id": OWNER_ID, "first_name": "Mia",
                                                          "last_name": "Chen", "phone_number": "+44 7700 900123"}},
                                ensure_ascii=False)[:-1])
        handle.write(', "chats": {"about": "This page lists all chats from this export.", "list": [')
        for index, (chat, share) in enumerate(zip(chats, shares, strict=True)):
            at = 1_672_531_200 + rng.randint(0, 86_400 * 30)
            records = []
            previous = None
            for _ in range(share):
                # Quiet hours between sessions, short gaps inside them, bursts from one sender.
                at += rng.randint(3 * 3600, 40 * 3600) if rng.random() < 0.04 else rng.randint(3, 180)
                if previous is not None and rng.random() < 0.35:
                    sender = previous
                elif rng.random() < 0.42:
                    sender = owner
                else:
                    sender = rng.choice(chat["members"][1:])
                records.append(_record(rng, number, at, sender))
                previous = sender
                number += 1
            body = {"name": chat["name"], "type": chat["type"], "id": chat["id"], "messages": records}
            handle.write(("," if index else "") + json.dumps(body, ensure_ascii=False))
        handle.write("]}}")


# -- the per-format exports ------------------------------------------------------------------------
# One shared model of who says what when (``conversation``), and a writer per format that lays it
# out the way that format's tool does (see each importer's docstring and tests/fixtures/exports/).

OWNER_NAME = "Mia Chen"
OWNERS = [OWNER_NAME, f"user{OWNER_ID}"]
OWNER_WXID = "wxid_mia001"
START = 1_672_531_200          # 2023-01-01 00:00 UTC
GROUPS = ("周末羽毛球群", "Hiking Crew", "高三2班", "Lakeside Book Club", "相亲相爱一家人", "Climbing Crew")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
EN_SENTENCES = (
    "Took the long way home today and found a tiny bakery that sells the best cinnamon rolls I have ever had.",
    "I keep telling myself I will go to bed early and then it is suddenly one in the morning again.",
    "The train was delayed forty minutes, so I finally finished the book everyone kept recommending.",
    "Honestly the best part of the trip was the ten minutes we spent lost in the rain.",
    "If anyone has a good recipe for dumplings that does not take all afternoon, I am listening.",
    "Work has been a lot lately but the team is great and that makes a huge difference.",
    "We walked up to the ridge before sunrise and the whole valley was covered in fog.",
    "Note to self: never trust the weather app when it says zero percent chance of rain.",
    "Spent the weekend fixing the bike, which mostly meant watching videos and losing screws.",
    "There is something about a quiet Sunday morning with coffee that no vacation can beat.",
    "The concert was loud, sweaty and completely worth it.",
    "I tried running again after a month off and my legs have filed a formal complaint.",
    "Finally booked the flights, now I just need to figure out where we are actually staying.",
)
ZH_SENTENCES = (
    "今天下班路上绕了远路，结果发现了一家特别好吃的小面馆。", "说好了今晚早点睡，一抬头又是凌晨一点了。",
    "地铁晚点了四十分钟，正好把那本大家都推荐的书看完了。", "这次旅行最难忘的，反而是我们在雨里迷路的那十分钟。",
    "周末去爬山，山顶的风特别大，但是看到日出的那一刻觉得一切都值了。",
    "最近工作有点忙，不过同事们都很好，累也不觉得苦。",
    "妈妈又打电话问我什么时候回家，我说下个月一定。", "自己在家包了一次饺子，形状很丑，味道还不错[捂脸]",
    "楼下新开了一家咖啡店，老板养了一只很胖的橘猫。", "跑步停了一个月再跑，腿已经在抗议了。",
    "终于把机票订好了，现在就差想好住哪儿了。", "朋友推荐的那部电影看哭了，后劲太大。",
    "收拾房间翻出了高中时候的日记，看得我脚趾抠地[笑cry]",
)


@dataclass(slots=True)
class Chat:
    name: str
    ident: str
    members: list[str]         # everyone in it but the owner
    group: bool


@dataclass(slots=True)
class Event:
    at: int                    # Unix seconds
    sender: str
    owner: bool
    kind: str                  # text | sticker | photo | voice | system
    text: str                  # the words; a photo's caption (may be empty); a sticker's emoji


def make_chats(rng: random.Random, count: int = 9, *, groups: bool = True) -> list[Chat]:
    """DMs, and every third chat a group of 3-7 people."""
    people = rng.sample(NAMES, len(NAMES))
    chats = []
    for i in range(count):
        if groups and i % 3 == 2:
            members = rng.sample(NAMES, rng.randint(3, 7))
            chats.append(Chat(GROUPS[i // 3 % len(GROUPS)], str(900_000 + i), members, True))
        else:
            chats.append(Chat(people[i % len(people)], str(200_000 + i), [people[i % len(people)]], False))
    return chats


def _prose(rng: random.Random, sentences: int) -> str:
    if rng.random() < 0.5:
        return "".join(rng.choices(ZH_SENTENCES, k=sentences))
    return " ".join(rng.choices(EN_SENTENCES, k=sentences))


def _chat_text(rng: random.Random) -> str:
    """A chat message: mostly a short line, some two lines' worth, a few typed over several lines or long."""
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(ZH_STICKERS)
    if roll < 0.07:
        return "\n".join(_text(rng) for _ in range(rng.randint(2, 4)))
    if roll < 0.10:
        return _prose(rng, rng.randint(2, 6))
    if roll < 0.22:
        return f"{_text(rng)} {_text(rng)}"
    return _text(rng)


def _content(rng: random.Random, media: bool) -> tuple[str, str]:
    roll = rng.random() if media else 1.0
    if roll < 0.01:
        return "system", ""
    if roll < 0.05:
        return "sticker", rng.choice(EMOJI)
    if roll < 0.09:
        return "photo", _chat_text(rng) if rng.random() < 0.3 else ""
    if roll < 0.11:
        return "voice", ""
    return "text", _chat_text(rng)


def conversation(rng: random.Random, chats: list[Chat], messages: int, *,
                 media: bool = True) -> list[tuple[Chat, list[Event]]]:
    """About ``messages`` events over ``chats``: bursts, quiet hours, the owner about half of them."""
    weights = [rng.uniform(0.3, 3.0) for _ in chats]
    shares = [max(1, round(messages * w / sum(weights))) for w in weights]
    shares[0] = max(1, shares[0] + messages - sum(shares))
    out = []
    for chat, share in zip(chats, shares, strict=True):
        at = START + rng.randint(0, 86_400 * 30)
        events: list[Event] = []
        previous = None
        for _ in range(share):
            at += rng.randint(3 * 3600, 40 * 3600) if rng.random() < 0.04 else rng.randint(3, 180)
            if previous is not None and rng.random() < 0.35:
                sender = previous
            elif rng.random() < 0.5:
                sender = OWNER_NAME
            else:
                sender = rng.choice(chat.members)
            previous = sender
            events.append(Event(at, sender, sender == OWNER_NAME, *_content(rng, media)))
        out.append((chat, events))
    return out


def _local(at: int, layout: str = "%Y-%m-%d %H:%M:%S") -> str:
    return time.strftime(layout, time.gmtime(at))


def _wxid(name: str) -> str:
    return f"wxid_{zlib.crc32(name.encode()):08x}"


def _handle(name: str) -> str:
    return re.sub(r"\s+", "", name.lower())


def _other(rng: random.Random, chat: Chat, sender: str) -> str:
    """Someone in the chat who is not ``sender``: who a quote or reaction comes from."""
    return rng.choice([p for p in [OWNER_NAME, *chat.members] if p != sender] or [OWNER_NAME])


def _folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


MEMOTRACE_HEADER = ("localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status", "StrContent",
                    "StrTime", "Remark", "NickName", "Sender")


def gen_wechat(root: Path, rng: random.Random, n: int) -> Path:
    """MemoTrace CSV, one ``<remark>_utf8.csv`` per chat: WeChat type codes, XML for media, the owner's rows marked."""
    folder = _folder(root, "wechat")
    for chat, events in conversation(rng, make_chats(rng), n):
        talker = f"{chat.ident}@chatroom" if chat.group else _wxid(chat.name)
        with (folder / f"{chat.name}_utf8.csv").open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(MEMOTRACE_HEADER)
            for number, e in enumerate(events, 1):
                kind, sub, content = 1, 0, e.text
                if e.kind == "text" and rng.random() < 0.03:
                    kind, sub = 49, 57                     # a quoted reply: its own text in StrContent
                elif e.kind == "sticker":
                    kind, content = 47, (f'<msg><emoji fromusername="{_wxid(e.sender)}" type="2" '
                                         f'md5="{rng.getrandbits(64):016x}" len="{rng.randint(9000, 90000)}" '
                                         'cdnurl="http://wxapp.tc.qq.com/262/20304/stodownload"/></msg>')
                elif e.kind == "photo":
                    kind, content = 3, (f'<?xml version="1.0"?><msg><img aeskey="{rng.getrandbits(64):016x}" '
                                        f'length="{rng.randint(20000, 900000)}" '
                                        f'md5="{rng.getrandbits(64):016x}"/></msg>')
                elif e.kind == "voice":
                    kind, content = 34, '<msg><voicemsg endflag="1" length="3200" voicelength="2100"/></msg>'
                elif e.kind == "system":
                    kind, content = 10000, "你撤回了一条消息" if e.owner else f'"{e.sender}" 撤回了一条消息'
                if e.owner:
                    names = ("", OWNER_NAME, OWNER_WXID)
                elif chat.group:
                    names = ("", e.sender, _wxid(e.sender))
                else:
                    names = (e.sender, _handle(e.sender), talker)   # Remark, NickName, Sender
                writer.writerow([number, talker, kind, sub, int(e.owner), e.at, 2, content, _local(e.at), *names])
    return folder


def gen_pywxdump(root: Path, rng: random.Random, n: int) -> Path:
    """PyWxDump CSV, one ``<wxid>_0_<n>.csv`` per chat, with the ``users.json`` it writes beside them."""
    folder = _folder(root, "wechat-pywxdump")
    users = {OWNER_WXID: {"wxid": OWNER_WXID, "nickname": OWNER_NAME, "remark": "", "account": "mia_c"}}
    for chat, events in conversation(rng, make_chats(rng), n):
        room = f"{chat.ident}@chatroom" if chat.group else _wxid(chat.name)
        users[room] = {"wxid": room, "nickname": chat.name, "remark": chat.name, "account": ""}
        users.update({_wxid(p): {"wxid": _wxid(p), "nickname": p, "remark": "", "account": ""} for p in chat.members})
        with (folder / f"{room}_0_{len(events)}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("id", "MsgSvrID", "type_name", "is_sender", "talker", "room_name", "msg", "src",
                             "CreateTime"))
            for number, e in enumerate(events, 1):
                type_name, msg, src = "引用回复" if rng.random() < 0.03 else "文本", e.text, ""
                if e.kind == "sticker":
                    type_name, msg, src = "动画表情", "", "http://wxapp.tc.qq.com/262/20304/stodownload?m=aa11"
                elif e.kind in ("photo", "voice"):
                    type_name, msg = ("图片", "") if e.kind == "photo" else ("语音", "")
                    src = f"FileStorage\\MsgAttach\\{rng.getrandbits(32):08x}\\Image\\2023-10\\{number}.dat"
                elif e.kind == "system":
                    type_name, msg = "拍一拍", f'"{e.sender}" 拍了拍我'
                writer.writerow([number, 7_155_010_000 + number, type_name, int(e.owner),
                                 "我" if e.owner else _wxid(e.sender), room, msg, src, _local(e.at)])
    (folder / "users.json").write_text(json.dumps(users, ensure_ascii=False, indent=4), encoding="utf-8")
    return folder


def gen_wechat_json(root: Path, rng: random.Random, n: int) -> Path:
    """WeChatMsg's training JSON, one ``<contact>_train.json`` per DM: sessions as samples, a side's lines joined."""
    folder = _folder(root, "wechat-json")
    prompt = "你是Mia，一个聪明、热情、善良的人，后面的对话来自你的朋友，你要认真地回答他"
    for chat, events in conversation(rng, make_chats(rng, groups=False), n, media=False):
        records: list[dict] = []
        turns: list[dict] = []
        last = events[0].at
        for e in events:
            role = "assistant" if e.owner else "user"
            if turns and (e.at - last > 3600 or (len(turns) >= 12 and role == "user")):
                records.append({"conversations": [{"role": "system", "content": prompt}, *turns]})
                turns = []
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"] += "\n" + e.text
            else:
                turns.append({"role": role, "content": e.text})
            last = e.at
        records.append({"conversations": [{"role": "system", "content": prompt}, *turns]})
        (folder / f"{chat.name}_train.json").write_text(json.dumps(records, ensure_ascii=False, indent=4),
                                                        encoding="utf-8")
    return folder


def gen_memotrace_txt(root: Path, rng: random.Random, n: int) -> Path:
    """MemoTrace TXT, one ``<remark>.txt`` per chat: a ``time name`` line, the content, a blank line."""
    folder = _folder(root, "wechat-txt")
    for chat, events in conversation(rng, make_chats(rng), n):
        with (folder / f"{chat.name}.txt").open("w", encoding="utf-8") as handle:
            for e in events:
                if e.kind == "system":
                    handle.write(f"{_local(e.at)} {'你' if e.owner else repr(e.sender)} 撤回了一条消息\n\n")
                    continue
                body = {"photo": "[图片]", "voice": "[语音]", "sticker": "[表情包]"}.get(e.kind, e.text)
                if e.kind == "text" and rng.random() < 0.03:
                    body += f"\n引用:{_other(rng, chat, e.sender)}:{_text(rng)}"
                handle.write(f"{_local(e.at)} {e.sender}\n{body}\n\n")
    return folder


def gen_wechatexporter(root: Path, rng: random.Random, n: int) -> Path:
    """WechatExporter text, ``<chat>/index.txt``: ``SENDER (time):TEXT`` lines, quotes, notices glued on."""
    folder = _folder(root, "wechatexporter")
    rule = " ".join("-" * 15)
    for chat, events in conversation(rng, make_chats(rng), n):
        with (_folder(folder, chat.name) / "index.txt").open("w", encoding="utf-8") as handle:
            handle.write(f"{chat.name} - 微信聊天记录\n\n")
            for e in events:
                if e.kind == "system":   # the template ends without a line break
                    handle.write("你撤回了一条消息" if e.owner else f'"{e.sender}" 撤回了一条消息')
                    continue
                body = {"photo": "[图片]", "voice": f"[语音 0:{rng.randint(1, 59):02d}]", "sticker": "[表情]"}.get(
                    e.kind, e.text)
                if e.kind == "text" and rng.random() < 0.03:
                    body = f"「{_other(rng, chat, e.sender)}：{_text(rng)}」\n{rule}\n{body}"
                handle.write(f"{e.sender} ({_local(e.at)}):{body}\n")
    return folder


def gen_qq(root: Path, rng: random.Random, n: int) -> Path:
    """QQ's message-manager text: every chat in one file, between ``消息分组``/``消息对象`` sections."""
    path = _folder(root, "qq") / "全部消息记录.txt"
    rule = "=" * 64
    with path.open("w", encoding="utf-8-sig") as handle:
        handle.write("消息记录（此消息记录为文本格式，不支持重新导入）\n\n")
        for chat, events in conversation(rng, make_chats(rng), n):
            group = "我的群聊" if chat.group else "我的好友"
            handle.write(f"{rule}\n消息分组:{group}\n{rule}\n消息对象:{chat.name}\n{rule}\n\n")
            for e in events:
                t = time.gmtime(e.at)
                stamp = f"{t.tm_year}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour}:{t.tm_min:02d}:{t.tm_sec:02d}"
                who = f"{e.sender}({10000 + zlib.crc32(e.sender.encode()) % 10**9})" if chat.group else e.sender
                if chat.group and e.sender == chat.members[0]:
                    who = "【管理员】" + who
                body = {"photo": "[图片]", "voice": "[语音]", "sticker": "[表情]"}.get(e.kind, e.text)
                if e.kind == "system":
                    who, body = "系统消息(10000)", f"{e.sender}撤回了一条消息"
                handle.write(f"{stamp} {who}\n{body}\n\n")
    return path


def gen_telegram(root: Path, rng: random.Random, n: int) -> Path:
    """Telegram Desktop's full-account ``result.json`` (the pipeline's own export above)."""
    path = _folder(root, "telegram") / "result.json"
    generate_export(path, n, seed=rng.randint(0, 2**31))
    return path


def gen_discord(root: Path, rng: random.Random, n: int) -> Path:
    """DiscordChatExporter JSON, one file per channel or DM: authors, replies, attachments, stickers, reactions."""
    folder = _folder(root, "discord")
    ident = 1_200_000_000_000_000_000
    for index, (chat, events) in enumerate(conversation(rng, make_chats(rng), n)):
        channel_id = str(1_100_000_000_000_000_000 + index)
        name = _handle(chat.name) if not chat.group else f"chat-{index}"
        guild = ({"id": "0", "name": "Direct Messages"} if not chat.group else
                 {"id": "1000000000000000001", "name": "Doppel Testers"})
        guild["iconUrl"] = "https://cdn.discordapp.com/embed/avatars/0.png"
        records = []
        for e in events:
            ident += rng.randint(1, 10**6)
            record = {"id": str(ident), "type": "Default",
                      "timestamp": f"{_local(e.at, '%Y-%m-%dT%H:%M:%S')}.{rng.randint(0, 999):03d}+00:00",
                      "timestampEdited": None, "callEndedTimestamp": None, "isPinned": False, "content": e.text,
                      "author": {"id": str(900_000_000_000_000_000 + zlib.crc32(e.sender.encode())),
                                 "name": _handle(e.sender), "discriminator": "0000", "nickname": e.sender,
                                 "color": None, "isBot": False, "roles": [],
                                 "avatarUrl": "https://cdn.discordapp.com/embed/avatars/1.png"},
                      "attachments": [], "embeds": [], "stickers": [], "reactions": [], "mentions": [],
                      "inlineEmojis": []}
            if e.kind == "system":
                record.update(type="ChannelPinnedMessage", content="Pinned a message.")
            elif e.kind == "sticker":
                record["stickers"] = [{"id": str(ident), "name": "wave", "format": "Apng",
                                       "sourceUrl": "https://cdn.discordapp.com/stickers/749054660769218631.png"}]
            elif e.kind in ("photo", "voice"):
                file = f"IMG_{ident % 10000}.jpg" if e.kind == "photo" else "voice-message.ogg"
                record["attachments"] = [{"id": str(ident), "fileName": file,
                                          "fileSizeBytes": rng.randint(10**4, 10**6), "url": f"https://cdn.discordapp.com/attachments/{channel_id}/{ident}/{file}"}]
            elif records and rng.random() < 0.1:
                record.update(type="Reply", reference={"messageId": records[-1]["id"], "channelId": channel_id,
                                                       "guildId": guild["id"]})
            if rng.random() < 0.05:
                fan = _handle(_other(rng, chat, e.sender))
                record["reactions"] = [{"emoji": {"id": "", "name": "😂", "code": "joy", "isAnimated": False},
                                        "count": 1, "users": [{"id": "1", "name": fan}]}]
            records.append(record)
        channel = {"id": channel_id, "type": "GuildTextChat" if chat.group else "DirectTextChat",
                   "categoryId": "0", "category": "Text Channels", "name": name, "topic": None}
        doc = {"guild": guild, "channel": channel,
               "dateRange": {"after": None, "before": None}, "exportedAt": "2024-02-10T12:00:00.000+00:00",
               "messages": records, "messageCount": len(records)}
        path = folder / f"{guild['name']} - {name} [{channel_id}].json"
        path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    return folder


def _whatsapp_line(rng: random.Random, chat: Chat, e: Event, stamp: str, media: str) -> str:
    if e.kind == "system":
        if chat.group and not e.owner:
            return f"{stamp}{e.sender} added {_other(rng, chat, e.sender)}"
        return f"{stamp}{e.sender}: This message was deleted"
    if e.kind != "text":
        return f"{stamp}{e.sender}: {media}" + (f"\n{e.text}" if e.text and media.startswith("\u200e<") else "")
    return f"{stamp}{e.sender}: {e.text}" + (" <This message was edited>" if rng.random() < 0.02 else "")


def gen_whatsapp(root: Path, rng: random.Random, n: int) -> Path:
    """WhatsApp's text export from Android, ``WhatsApp Chat with <name>.txt``: day-first dates, continuation lines."""
    folder = _folder(root, "whatsapp")
    for chat, events in conversation(rng, make_chats(rng), n):
        with (folder / f"WhatsApp Chat with {chat.name}.txt").open("w", encoding="utf-8") as handle:
            handle.write(f"{_local(events[0].at, '%d/%m/%Y, %H:%M')} - Messages and calls are end-to-end encrypted. "
                         "No one outside of this chat, not even WhatsApp, can read or listen to them.\n")
            for e in events:
                handle.write(_whatsapp_line(rng, chat, e, _local(e.at, "%d/%m/%Y, %H:%M - "), "<Media omitted>") + "\n")
    return folder


def gen_whatsapp_zip(root: Path, rng: random.Random, n: int) -> Path:
    """The zip an iPhone shares: ``_chat.txt`` (``[31/12/23, 23:59:59] Name: text``) and some of its media."""
    folder = _folder(root, "whatsapp-zip")
    for chat, events in conversation(rng, make_chats(rng), n):
        lines = [f"[{_local(events[0].at, '%d/%m/%y, %H:%M:%S')}] {chat.name}: \u200eMessages and calls are "
                 "end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them."]
        media: list[str] = []
        for number, e in enumerate(events, 1):
            kind = {"photo": "PHOTO", "voice": "AUDIO", "sticker": "STICKER"}.get(e.kind, "")
            name = f"{number:08d}-{kind}-{_local(e.at, '%Y-%m-%d-%H-%M-%S')}.{'jpg' if kind == 'PHOTO' else 'opus'}"
            if kind and len(media) < 40:
                media.append(name)
            stamp = _local(e.at, "[%d/%m/%y, %H:%M:%S] ")
            lines.append(_whatsapp_line(rng, chat, e, stamp, f"\u200e<attached: {name}>"))
        with zipfile.ZipFile(folder / f"WhatsApp Chat - {chat.name}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("_chat.txt", "\n".join(lines) + "\n")
            for name in media:                          # counted by the importer, never read
                archive.writestr(name, rng.randbytes(2048))
    return folder


def gen_line(root: Path, rng: random.Random, n: int) -> Path:
    """LINE's saved chat history: title, date lines, ``HH:MM<TAB>Sender<TAB>Text``, quoted multi-line messages."""
    folder = _folder(root, "line")
    for chat, events in conversation(rng, make_chats(rng), n):
        file = f"[LINE] {chat.name}.txt" if chat.group else f"[LINE] Chat with {chat.name}.txt"
        with (folder / file).open("w", encoding="utf-8") as handle:
            handle.write(f"[LINE] Chat history {'in' if chat.group else 'with'} {chat.name}\n"
                         f"Saved on: {_local(events[-1].at, '%m/%d/%Y %H:%M')}\n")
            day = ""
            for e in events:
                if _local(e.at, "%Y%m%d") != day:
                    day = _local(e.at, "%Y%m%d")
                    handle.write(f"\n{_local(e.at, '%a, %m/%d/%Y')}\n")
                body = {"photo": "[Photo]", "voice": "[Voice message]", "sticker": "[Sticker]"}.get(e.kind, e.text)
                if e.kind == "system":
                    body = f"{e.sender} unsent a message."
                if "\n" in body or body.startswith('"'):
                    body = '"' + body.replace('"', '""') + '"'
                handle.write(f"{_local(e.at, '%H:%M')}\t{e.sender}\t{body}\n")
    return folder


def _imessage_stamp(at: int) -> str:
    t = time.gmtime(at)
    return (f"{MONTHS[t.tm_mon - 1]} {t.tm_mday:02d}, {t.tm_year} {t.tm_hour % 12 or 12:>2}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d} {'PM' if t.tm_hour >= 12 else 'AM'}")


def gen_imessage(root: Path, rng: random.Random, n: int) -> Path:
    """imessage-exporter's txt, one file per chat: time, sender (``Me``, a number, a name), text, tapbacks, files."""
    folder = _folder(root, "imessage")
    for chat, events in conversation(rng, make_chats(rng), n):
        phone = f"+1555{zlib.crc32(chat.name.encode()) % 10**7:07d}"
        with (folder / f"{chat.name if chat.group else phone}.txt").open("w", encoding="utf-8") as handle:
            for number, e in enumerate(events):
                who = "Me" if e.owner else e.sender if chat.group else phone
                read = " (Read by you after 2 minutes)" if not e.owner and rng.random() < 0.3 else ""
                lines = [_imessage_stamp(e.at) + read, who]
                attachment = (f"/Users/mia/Library/Messages/Attachments/{number % 256:02x}/{number % 16:02d}/"
                              f"{rng.getrandbits(64):016X}/IMG_{number}.HEIC")
                if e.kind == "photo":
                    lines += [*filter(None, [e.text]), attachment]
                elif e.kind == "voice":
                    lines.append(attachment.replace(f"IMG_{number}.HEIC", "Audio Message.caf"))
                elif e.kind == "sticker":
                    lines.append(f"Sticker from {who}: {attachment}")
                elif e.kind == "system":
                    lines.append("You unsent a message." if e.owner else f"{who} unsent a message.")
                else:
                    lines += e.text.split("\n")
                if rng.random() < 0.05:
                    lines += ["Tapbacks:", f"    Loved by {'Me' if not e.owner else phone}"]
                handle.write("\n".join(lines) + "\n\n")
    return folder


def gen_signal(root: Path, rng: random.Random, n: int) -> Path:
    """signal-export's Markdown, ``<chat>/chat.md``: ``[time] Name: text`` plus two spaces, links, reactions."""
    folder = _folder(root, "signal")
    for chat, events in conversation(rng, make_chats(rng), n):
        with (_folder(folder, chat.name) / "chat.md").open("w", encoding="utf-8") as handle:
            for number, e in enumerate(events):
                text = e.text
                if e.kind == "photo":
                    text = f"{text}  ![IMG_{number}.jpg](./media/IMG_{number}.jpg)".lstrip()
                elif e.kind == "voice":
                    text = f"[voice-message-{number}.m4a](./media/voice-message-{number}.m4a)"
                elif e.kind == "sticker":
                    text = f" \n(( {e.text} ))"
                elif e.kind == "system":
                    text = "(This message was deleted)" if rng.random() < 0.5 else "Missed voice call"
                handle.write(f"[{_local(e.at)}] {'Me' if e.owner else e.sender}: {text}  \n")
                if rng.random() < 0.05:
                    who = _other(rng, chat, e.sender)
                    handle.write(f"(- {'Me' if who == OWNER_NAME else who}: ❤️ -)\n")
    return folder


def _mojibake(text: str) -> str:
    """As Meta writes non-ASCII text: each UTF-8 byte as one latin-1 character."""
    return text.encode("utf-8").decode("latin-1")


def gen_meta(root: Path, rng: random.Random, n: int) -> Path:
    """Messenger's download, ``messages/inbox/<chat>/message_N.json``: pages of 10,000, newest first, mojibake."""
    inbox = _folder(root, "meta") / "messages" / "inbox"
    for index, (chat, events) in enumerate(conversation(rng, make_chats(rng), n)):
        folder = _folder(inbox, f"{_handle(chat.name) or 'chat'}_{10158234567890123 + index}")
        records = []
        for e in reversed(events):
            record: dict = {"sender_name": _mojibake(e.sender), "timestamp_ms": e.at * 1000 + rng.randint(0, 999)}
            if e.text and e.kind != "sticker":
                record["content"] = _mojibake(e.text)
            if e.kind == "photo":
                record["photos"] = [{"uri": f"messages/inbox/{folder.name}/photos/{rng.getrandbits(40)}.jpg",
                                     "creation_timestamp": e.at}]
            elif e.kind == "voice":
                record["audio_files"] = [{"uri": f"messages/inbox/{folder.name}/audio/{rng.getrandbits(40)}.mp4",
                                          "creation_timestamp": e.at}]
            elif e.kind == "sticker":
                record["sticker"] = {"uri": "messages/stickers_used/39178562_1505197616293642_54113442_n.png"}
            elif e.kind == "system":
                record.update(content="The call ended.", call_duration=rng.randint(10, 900))
            if rng.random() < 0.05:
                record["reactions"] = [{"reaction": _mojibake("❤"), "actor": _mojibake(_other(rng, chat, e.sender))}]
            record["is_geoblocked_for_viewer"] = False
            records.append(record)
        for page, start in enumerate(range(0, len(records), 10_000), 1):
            doc = {"participants": [{"name": _mojibake(p)} for p in [*chat.members, OWNER_NAME]],
                   "messages": records[start:start + 10_000], "title": _mojibake(chat.name),
                   "is_still_participant": True, "thread_path": f"inbox/{folder.name}", "magic_words": []}
            if chat.group:
                doc["thread_type"] = "RegularGroup"
            (folder / f"message_{page}.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return root / "meta"


def _archive_js(name: str, records: list) -> str:
    return f"window.YTD.{name}.part0 = " + json.dumps(records, ensure_ascii=False, indent=2, separators=(",", " : "))


def gen_twitter(root: Path, rng: random.Random, n: int) -> Path:
    """An X archive's ``data/tweets.js`` (with ``account.js``): threads, replies, retweets, t.co links, photos."""
    folder = _folder(root, "twitter") / "data"
    folder.mkdir(exist_ok=True)
    (folder / "account.js").write_text(_archive_js("account", [{"account": {
        "email": "mia@example.org", "createdVia": "web", "username": "miachen_hikes", "accountId": "1234567890",
        "createdAt": "2012-03-04T10:11:12.000Z", "accountDisplayName": OWNER_NAME}}]), encoding="utf-8")
    at, mine, records = START - 86_400 * 3650, [], []
    for number in range(n):
        at += rng.randint(30, 7200)
        tweet_id = str(1_300_000_000_000_000_000 + number * 1000 + rng.randint(0, 999))
        text = _prose(rng, rng.randint(1, 3))[:280] if rng.random() < 0.6 else _chat_text(rng)
        friend = _handle(rng.choice(NAMES[::2]))
        tweet: dict = {"retweeted": False, "source": '<a href="https://mobile.twitter.com" rel="nofollow">Twitter '
                       'Web App</a>', "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": []},
                       "favorite_count": str(rng.randint(0, 40)), "id_str": tweet_id, "truncated": False,
                       "retweet_count": "0", "id": tweet_id, "favorited": False, "lang": "en",
                       "created_at": time.strftime("%a %b %d %H:%M:%S +0000 %Y", time.gmtime(at))}
        roll = rng.random()
        if roll < 0.07:
            text = f"RT @{friend}: {text}"[:280]
        elif roll < 0.25 and mine:
            tweet.update(in_reply_to_status_id_str=rng.choice(mine[-5:]), in_reply_to_screen_name="miachen_hikes")
        elif roll < 0.37:
            tweet.update(in_reply_to_status_id_str=str(1_200_000_000_000_000_000 + number),
                         in_reply_to_screen_name=friend)
            text = f"@{friend} {text}"
        if rng.random() < 0.08:
            url = f"https://t.co/{rng.getrandbits(40):010x}"
            tweet["entities"]["urls"] = [{"url": url, "expanded_url": "https://example.org/trail-report",
                                          "display_url": "example.org/trail-report"}]
            text = f"{text} {url}"
        elif rng.random() < 0.05:
            url = f"https://t.co/{rng.getrandbits(40):010x}"
            tweet["entities"]["media"] = [{"url": url, "type": "photo", "media_url_https":
                                           f"https://pbs.twimg.com/media/{rng.getrandbits(60):015x}.jpg"}]
            text = f"{text} {url}" if rng.random() < 0.7 else url
        tweet.update(full_text=text, display_text_range=["0", str(len(text))])
        mine.append(tweet_id)
        records.append({"tweet": tweet})
    records.reverse()                                   # the archive lists the newest first
    (folder / "tweets.js").write_text(_archive_js("tweets", records), encoding="utf-8")
    return folder / "tweets.js"


def gen_weibo(root: Path, rng: random.Random, n: int) -> Path:
    """weibo-crawler's ``<user_id>.json``: the user, then the posts, reposts with their original, newest first."""
    uid, name = 7412345678, "米娅不吃香菜"
    user = {"id": str(uid), "screen_name": name, "gender": "f", "statuses_count": n, "followers_count": 321,
            "follow_count": 248, "description": "爱爬山，也爱吃 🍜", "verified": False}
    at, posts = START - 86_400 * 3650, []
    for number in range(n):
        at += rng.randint(60, 7200)
        text = "".join(rng.choices(ZH_SENTENCES, k=rng.randint(1, 8)))
        if rng.random() < 0.1:
            text = f"#{rng.choice(('周末去哪儿', '今日份快乐', '爬山'))}# {text}"
        post = {"user_id": uid, "screen_name": name, "id": 4_900_000_000_000_000 + number, "bid": f"N{number:08d}",
                "text": text, "article_url": "", "pics": "", "video_url": "", "location": "",
                "created_at": _local(at, "%Y-%m-%dT%H:%M:%S"), "source": rng.choice(("iPhone客户端", "微博 weibo.com")),
                "attitudes_count": rng.randint(0, 50), "comments_count": rng.randint(0, 9), "reposts_count": 0,
                "topics": "", "at_users": ""}
        if rng.random() < 0.1:
            post["pics"] = ",".join(f"https://wx1.sinaimg.cn/large/{rng.getrandbits(40):010x}.jpg"
                                    for _ in range(rng.randint(1, 4)))
        if rng.random() < 0.12:
            friend = rng.choice(NAMES[1::2])
            post["text"] = "转发微博" if rng.random() < 0.4 else f"{_text(rng)}//@{friend}:{_text(rng)}"
            post["retweet"] = {"user_id": 1111111111, "screen_name": friend, "id": 4_800_000_000_000_000 + number,
                               "bid": f"M{number:08d}", "text": _prose(rng, 2), "pics": "", "video_url": "",
                               "created_at": _local(at - 3600, "%Y-%m-%dT%H:%M:%S"), "source": "微博 weibo.com"}
        posts.append(post)
    path = _folder(root, "weibo") / f"{uid}.json"
    path.write_text(json.dumps({"user": user, "weibo": posts[::-1]}, ensure_ascii=False, indent=4), encoding="utf-8")
    return path


def gen_sharegpt(root: Path, rng: random.Random, n: int) -> Path:
    """ShareGPT JSONL: a record per conversation, 2-12 turns, the gpt side's bursts split by a blank line."""
    path = _folder(root, "sharegpt") / "persona_dataset.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        made = 0
        while made < n:
            turns = []
            for number in range(rng.randint(2, 12)):
                parts = [_chat_text(rng) for _ in range(rng.randint(1, 3) if number % 2 else 1)]
                turns.append({"from": "gpt" if number % 2 else "human", "value": "\n\n".join(parts)})
                made += len(parts)
            record: dict = {"conversations": turns}
            if rng.random() < 0.1:
                record["system"] = "You are Mia. Reply casually."
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def gen_articles(root: Path, rng: random.Random, n: int) -> Path:
    """Blog posts as Markdown, one per file: front matter, a title, paragraphs, now and then an image or code."""
    folder = _folder(root, "articles")
    made, number = 0, 0
    while made < n:
        number += 1
        zh = rng.random() < 0.5
        paragraphs = []
        for _ in range(rng.randint(3, 14)):
            sentences = rng.choices(ZH_SENTENCES if zh else EN_SENTENCES, k=rng.randint(2, 6))
            paragraphs.append(("" if zh else " ").join(sentences))
            if rng.random() < 0.08:
                paragraphs.append(f"![photo](images/{number}.jpg)" if rng.random() < 0.7 else
                                  "```bash\necho 'packing list'\n```")
        title = f"{'周末随笔' if zh else 'Notes from the trail'} {number}"
        date = _local(START - number * 86_400, "%Y-%m-%d")
        text = f'---\ntitle: "{title}"\ndate: {date}\ntags: [life]\n---\n\n# {title}\n\n' + "\n\n".join(paragraphs)
        (folder / f"{date}-post-{number}.md").write_text(text + "\n", encoding="utf-8")
        made += max(1, round(sum(map(len, paragraphs)) / 450))    # about how many ~500-character chunks
    return folder


def gen_doppel(root: Path, rng: random.Random, n: int) -> Path:
    """Doppel's normalized JSONL, as ``doppel data import --out`` writes it (``Message.to_json`` per line)."""
    from training.importers.messages import Kind, Message
    from training.importers.normalized import write_messages

    kinds = {"text": Kind.TEXT, "sticker": Kind.STICKER, "photo": Kind.MEDIA, "voice": Kind.MEDIA,
             "system": Kind.SYSTEM}

    def messages():
        for chat, events in conversation(rng, make_chats(rng), n):
            for number, e in enumerate(events, 1):
                yield Message(platform="telegram", chat_id=chat.ident, chat_name=chat.name,
                              chat_type="group" if chat.group else "dm", sender_id=_handle(e.sender),
                              sender_name=e.sender, is_owner=e.owner, timestamp=datetime.fromtimestamp(e.at, UTC),
                              text=e.text if e.kind != "system" else "pinned a message", kind=kinds[e.kind],
                              message_id=str(number), source=f"result.json:messages[{number}]",
                              extra={"media": e.kind} if e.kind in ("photo", "voice") else {})

    path = _folder(root, "doppel") / "messages.jsonl"
    write_messages(path, messages())
    return path


# Row name -> (generator, the format detection must name). FORMATS' order; WhatsApp twice.
ROWS: dict[str, tuple[Callable[[Path, random.Random, int], Path], str]] = {
    "wechat": (gen_wechat, "wechat"), "wechat-pywxdump": (gen_pywxdump, "wechat-pywxdump"),
    "wechat-json": (gen_wechat_json, "wechat-json"), "wechat-txt": (gen_memotrace_txt, "wechat-txt"),
    "wechatexporter": (gen_wechatexporter, "wechatexporter"), "qq": (gen_qq, "qq"),
    "telegram": (gen_telegram, "telegram"), "discord": (gen_discord, "discord"),
    "whatsapp": (gen_whatsapp, "whatsapp"), "whatsapp-zip": (gen_whatsapp_zip, "whatsapp"),
    "line": (gen_line, "line"), "imessage": (gen_imessage, "imessage"), "signal": (gen_signal, "signal"),
    "meta": (gen_meta, "meta"), "twitter": (gen_twitter, "twitter"), "weibo": (gen_weibo, "weibo"),
    "sharegpt": (gen_sharegpt, "sharegpt"), "articles": (gen_articles, "articles"), "doppel": (gen_doppel, "doppel"),
}


# -- measuring ------------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: VmHWM, which starts afresh at exec. Linux's
    ``ru_maxrss`` does not: a child also reports its parent's size when it was started."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg has them ("" where there is none)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ""


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def read_lines(path: Path) -> int:
    """The baseline: every line of the export's files read and decoded with plain Python, nothing parsed."""
    count = 0
    for file in _files(path):
        if file.suffix == ".zip":
            with zipfile.ZipFile(file) as archive, archive.open("_chat.txt") as raw:
                count += sum(1 for _ in io.TextIOWrapper(raw, encoding="utf-8"))
        else:
            with file.open(encoding="utf-8-sig") as handle:
                count += sum(1 for _ in handle)
    return count


def measure_import(path: Path, repeat: int) -> dict:
    """Time ``import_path`` on ``path`` ``repeat`` times in this process, each after the baseline."""
    from training.importers.detect import import_path

    imports, baselines = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        read_lines(path)
        baselines.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = import_path(path, owner=OWNERS)
        imports.append(time.perf_counter() - started)
        messages = result.messages
        figures = {"messages": len(messages), "owner_share": round(sum(m.is_owner for m in messages) /
                                                                   max(1, len(messages)), 2),
                   "detected": dict(Counter(source.format for source in result.sources)),
                   "problems": result.problems[:5]}
        del result, messages
    return {**figures, "import_s": round(min(imports), 3), "import_s_median": round(statistics.median(imports), 3),
            "baseline_s": round(min(baselines), 3),
            "peak_rss_mb": peak_rss_mb()}


def _child(*argv: str) -> dict:
    """Run this script with ``argv`` in a fresh process and read the JSON line it prints last."""
    run = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, cwd=ROOT)
    if run.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{run.stdout}{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def run_formats(work: Path, rows: list[str], messages: int, repeat: int, keep: bool) -> dict:
    """The per-format table: generate each export, measure it in a fresh process, drop it unless kept."""
    out = {}
    for index, name in enumerate(rows):
        generate, expected = ROWS[name]
        root = work / "formats"
        started = time.perf_counter()
        path = generate(root, random.Random(SEED + index), messages)
        generated_s = time.perf_counter() - started
        files = _files(path)
        load = load_average()
        figures = _child("--measure-import", str(path), str(repeat))
        rate = figures["messages"] / figures["import_s"] if figures["import_s"] else 0.0
        detected = figures["detected"]
        size_mb = round(sum(f.stat().st_size for f in files) / 2**20, 1)
        figures.update(format=expected, files=len(files), file_mb=size_mb,
                       generated_s=round(generated_s, 1), messages_per_s=round(rate),
                       ratio_to_baseline=round(figures["import_s"] / figures["baseline_s"], 1)
                       if figures["baseline_s"] else None,
                       detected_ok=set(detected) == {expected}, load_average=load,
                       target_messages_per_s=TARGET_RATE)
        figures["pass"] = figures["detected_ok"] and rate >= TARGET_RATE
        out[name] = figures
        print(f"  {name:<16} {figures['messages']:>7,} messages  {rate:>9,.0f} msg/s  load {load}", flush=True)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    doppel = out.get("doppel", {}).get("messages_per_s")
    for figures in out.values():
        figures["ratio_to_doppel"] = round(figures["messages_per_s"] / doppel, 2) if doppel else None
    return out


def run_mixed(work: Path, messages: int, keep: bool) -> dict:
    """A slice of every format in one folder, ``messages`` in all, through import and build."""
    root = work / "mixed"
    per_row = max(1, messages // len(ROWS))
    for index, (generate, _) in enumerate(ROWS.values()):
        generate(root / "exports", random.Random(SEED + 100 + index), per_row)
    load = load_average()
    figures = _child("--measure-mixed", str(root / "exports"), str(root / "dataset"))
    scale = figures["messages"] / 100_000
    figures.update(files=len(_files(root / "exports")), load_average=load, target_s=round(TARGET_SECONDS * scale, 1),
                   passed=figures["total_s"] <= TARGET_SECONDS * scale)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return figures


def measure(export: Path, out_dir: Path, owner: list[str] | None = None) -> dict:
    """Time the pipeline on ``export`` in this process; returns the figures."""
    from training.dataset.build import BuildOptions, build_dataset
    from training.importers.detect import import_path

    started = time.perf_counter()
    imported = import_path(export, owner=owner or [f"user{OWNER_ID}"])
    messages = imported.messages
    import_s = time.perf_counter() - started
    result = build_dataset(messages, out_dir, BuildOptions(),
                           sources={str(s.path): len(s.messages) for s in imported.sources})
    total_s = time.perf_counter() - started
    report = result.report
    return {
        "messages": len(messages), "file_mb": round(export.stat().st_size / 2**20, 1),
        "stages_s": {"import": round(import_s, 3), **report["timings_s"]},
        "total_s": round(total_s, 3), "messages_per_s": round(len(messages) / total_s),
        "peak_rss_mb": peak_rss_mb(),
        "kept": report["messages"]["kept"], "dropped": report["messages"]["dropped"],
        "sessions": report["sessions"], "samples": report["samples"]["written"],
        "pii_found": report["pii_found"], "chart": bool(result.chart_path),
    }


def _rows(value: str) -> list[str]:
    if value == "all":
        return list(ROWS)
    if value in ("", "none"):
        return []
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        raise argparse.ArgumentTypeError(f"no such format: {', '.join(unknown)} (have: {', '.join(ROWS)})")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000,
                        help="messages in the Telegram export, in each format's export, and in the mixed folder")
    parser.add_argument("--formats", type=_rows, default="all", help="rows of the per-format table: all, none, or a,b")
    parser.add_argument("--no-mixed", dest="mixed", action="store_false", help="leave out the mixed folder's build")
    parser.add_argument("--repeat", type=int, default=3, help="imports per format (the best and the median are kept)")
    parser.add_argument("--keep", type=Path, help="Write the export and the dataset here and keep them.")
    parser.add_argument("--json", type=Path, help="Also write the figures to this file.")
    parser.add_argument("--measure", nargs=2, metavar=("EXPORT", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--measure-import", nargs=2, metavar=("PATH", "REPEAT"), help=argparse.SUPPRESS)
    parser.add_argument("--measure-mixed", nargs=2, metavar=("EXPORTS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), Path(args.measure[1]))))
        return 0
    if args.measure_import:
        print(json.dumps(measure_import(Path(args.measure_import[0]), int(args.measure_import[1]))))
        return 0
    if args.measure_mixed:
        print(json.dumps(measure(Path(args.measure_mixed[0]), Path(args.measure_mixed[1]), OWNERS)))
        return 0
    _check_rows()

    with tempfile.TemporaryDirectory(prefix="doppel-bench-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        export = work / "result.json"
        started = time.perf_counter()
        generate_export(export, args.messages)
        print(f"generated {export} ({export.stat().st_size / 2**20:.1f} MB, {args.messages:,} messages) "
              f"in {time.perf_counter() - started:.1f} s")
        start_load = load_average()
        run = subprocess.run([sys.executable, __file__, "--measure", str(export), str(work / "dataset")],
                             capture_output=True, text=True, cwd=ROOT)
        if run.returncode:
            print(run.stdout + run.stderr, file=sys.stderr)
            return run.returncode
        figures = json.loads(run.stdout.strip().splitlines()[-1])
        figures["load_average"] = {"pipeline": start_load}
        if args.formats:
            print(f"per-format import, {args.messages:,} messages each, best of {args.repeat}:", flush=True)
            figures["formats"] = run_formats(work, args.formats, args.messages, args.repeat, bool(args.keep))
        if args.mixed:
            figures["mixed"] = run_mixed(work, args.messages, bool(args.keep))
        figures["load_average"]["end"] = load_average()
    figures["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    figures["repeat"] = args.repeat
    _print(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n")
    scale = figures["messages"] / 100_000
    ok = figures["total_s"] <= TARGET_SECONDS * scale and figures["peak_rss_mb"] <= TARGET_PEAK_MB
    ok = ok and all(row["pass"] for row in figures.get("formats", {}).values())
    return 0 if ok and figures.get("mixed", {}).get("passed", True) else 1


def _check_rows() -> None:
    """Every format the importers know has a row here: a new format without a generator is named."""
    from training.importers.detect import FORMAT_NAMES

    missing = [name for name in FORMAT_NAMES if name not in {fmt for _, fmt in ROWS.values()}]
    if missing:
        print(f"note: no generator for {', '.join(missing)}: not in the per-format table", file=sys.stderr)


def _print(figures: dict) -> None:
    print(f"\n{figures['machine']}")
    print(f"{'stage':<10} {'seconds':>8}")
    for stage, seconds in figures["stages_s"].items():
        print(f"{stage:<10} {seconds:>8.3f}")
    scale = figures["messages"] / 100_000
    seconds_ok = "PASS" if figures["total_s"] <= TARGET_SECONDS * scale else "MISS"
    memory_ok = "PASS" if figures["peak_rss_mb"] <= TARGET_PEAK_MB else "MISS"
    print(f"{'total':<10} {figures['total_s']:>8.3f}   target <= {TARGET_SECONDS * scale:.1f} s  {seconds_ok}")
    print(f"messages/s: {figures['messages_per_s']:,}   ({figures['messages']:,} messages, {figures['file_mb']} MB)")
    print(f"peak memory (RSS): {figures['peak_rss_mb']:.0f} MB   target <= {TARGET_PEAK_MB:.0f} MB  {memory_ok}")
    print(f"kept {figures['kept']:,}; dropped {figures['dropped']}; sessions {figures['sessions']:,}; "
          f"samples {figures['samples']:,}; private data replaced {figures['pii_found']}; chart {figures['chart']}")
    print(f"load average: {figures['load_average']['pipeline']} (1, 5, 15 min)")
    if figures.get("formats"):
        _print_formats(figures["formats"], figures["repeat"])
    if figures.get("mixed"):
        mixed = figures["mixed"]
        print(f"\nmixed folder: {mixed['messages']:,} messages in {mixed['files']:,} files, import "
              f"{mixed['stages_s']['import']:.2f} s, import + build {mixed['total_s']:.2f} s (target <= "
              f"{mixed['target_s']:.1f} s) {'PASS' if mixed['passed'] else 'MISS'}; peak {mixed['peak_rss_mb']:.0f} MB;"
              f" load {mixed['load_average']}")


def _verdict(row: dict) -> str:
    return ("PASS" if row["pass"] else "MISS") + ("" if row["detected_ok"] else f" (read as {row['detected']})")


def _print_formats(rows: dict, repeat: int) -> None:
    from _harness import table  # only here: the harness loads the relay client, which the measured processes must not

    lines = table(("format", "messages", "files", "MB", f"import s (best of {repeat})", "median s", "msg/s",
                   "read lines s", "x lines", "x doppel", "load 1/5/15", "target"),
                  [(name, f"{row['messages']:,}", row["files"], row["file_mb"], f"{row['import_s']:.3f}",
                    f"{row['import_s_median']:.3f}", f"{row['messages_per_s']:,}", f"{row['baseline_s']:.3f}",
                    row["ratio_to_baseline"], row["ratio_to_doppel"], row["load_average"], _verdict(row))
                   for name, row in rows.items()])
    print(f"\nimport alone, per format (target >= {TARGET_RATE:,} msg/s; x lines: import time over the time "
          "to read the same files' lines; x doppel: msg/s against the normalized reader)")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
