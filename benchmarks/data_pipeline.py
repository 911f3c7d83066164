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
3. prints seconds per stage, total seconds, messages/s and the peak resident memory
   (``ru_maxrss`` of the measuring process), against the targets from the issue: under 10 s and
   under 1 GB for 100,000 messages. ``--json PATH`` also writes the figures.

Run from the repository root::

    .venv/bin/python benchmarks/data_pipeline.py [--messages 100000] [--keep DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 10.0
TARGET_PEAK_MB = 1024.0
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


def measure(export: Path, out_dir: Path) -> dict:
    """Time the pipeline on ``export`` in this process; returns the figures."""
    from training.dataset.build import BuildOptions, build_dataset
    from training.importers.detect import import_path

    started = time.perf_counter()
    imported = import_path(export, owner=[f"user{OWNER_ID}"])
    messages = imported.messages
    import_s = time.perf_counter() - started
    result = build_dataset(messages, out_dir, BuildOptions(),
                           sources={str(s.path): len(s.messages) for s in imported.sources})
    total_s = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = result.report
    return {
        "messages": len(messages), "file_mb": round(export.stat().st_size / 2**20, 1),
        "stages_s": {"import": round(import_s, 3), **report["timings_s"]},
        "total_s": round(total_s, 3), "messages_per_s": round(len(messages) / total_s),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "kept": report["messages"]["kept"], "dropped": report["messages"]["dropped"],
        "sessions": report["sessions"], "samples": report["samples"]["written"],
        "pii_found": report["pii_found"], "chart": bool(result.chart_path),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="Write the export and the dataset here and keep them.")
    parser.add_argument("--json", type=Path, help="Also write the figures to this file.")
    parser.add_argument("--measure", nargs=2, metavar=("EXPORT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), Path(args.measure[1]))))
        return 0

    with tempfile.TemporaryDirectory(prefix="doppel-bench-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        export = work / "result.json"
        started = time.perf_counter()
        generate_export(export, args.messages)
        print(f"generated {export} ({export.stat().st_size / 2**20:.1f} MB, {args.messages:,} messages) "
              f"in {time.perf_counter() - started:.1f} s")
        run = subprocess.run([sys.executable, __file__, "--measure", str(export), str(work / "dataset")],
                             capture_output=True, text=True, cwd=ROOT)
        if run.returncode:
            print(run.stdout + run.stderr, file=sys.stderr)
            return run.returncode
        figures = json.loads(run.stdout.strip().splitlines()[-1])
    figures["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    _print(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=2) + "\n")
    scale = figures["messages"] / 100_000
    ok = figures["total_s"] <= TARGET_SECONDS * scale and figures["peak_rss_mb"] <= TARGET_PEAK_MB
    return 0 if ok else 1


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


if __name__ == "__main__":
    sys.exit(main())
