"""The terminal chat (bot/terminal.py): a platform adapter on stdin/stdout through the shared core."""

from __future__ import annotations

import asyncio
import io
import json

from rich.console import Console

from bot.terminal import CHANNEL_PREFIX, chat


def _stdin(monkeypatch, lines: list[str]) -> None:
    stream = io.StringIO("".join(f"{line}\n" for line in lines))
    monkeypatch.setattr("sys.stdin", stream)


async def _chat_with_worker(settings, url, make_worker, lines, monkeypatch, user="sam") -> tuple[int, list[str]]:
    _stdin(monkeypatch, lines)
    out = io.StringIO()
    worker = make_worker(url)
    task = asyncio.create_task(worker.run())
    try:
        missing = await chat(settings, url, Console(file=out, width=200), reply_timeout_s=10, user=user)
    finally:
        worker.stop()
        await task
    return missing, out.getvalue().splitlines()


async def test_lines_are_answered_in_order_and_recorded_as_a_friend(make_settings, redis_url, make_worker,
                                                                   monkeypatch, sync_redis, keys):
    settings = make_settings(bot={"pause_min_s": 0, "pause_max_s": 0})
    missing, lines = await _chat_with_worker(settings, redis_url, make_worker, ["hi there", "", "second"],
                                             monkeypatch)
    assert missing == 0
    assert lines == ["clone> echo: hi there", "clone> echo: second"]
    history = [json.loads(item) for item in sync_redis.lrange(keys.history(CHANNEL_PREFIX + "sam"), 0, -1)]
    said = [(turn["speaker"], turn["text"], turn["is_owner"]) for turn in history]
    # The local user chats with the clone as a friend: their lines are never the owner's own turns.
    assert ("sam", "hi there", False) in said and ("sam", "second", False) in said


async def test_clone_commands_work_for_the_local_user(make_settings, redis_url, make_worker, monkeypatch, sync_redis,
                                                      keys):
    settings = make_settings(bot={"pause_min_s": 0, "pause_max_s": 0})
    missing, lines = await _chat_with_worker(
        settings, redis_url, make_worker, ["/clone status", "/clone pause", "are you there?", "/clone resume", "back"],
        monkeypatch)
    text = "\n".join(lines)
    assert missing == 0, text
    assert "workers: 1" in text and "paused: no" in text
    assert "Paused in this chat" in text and "Resumed in this chat" in text
    assert "echo: are you there?" not in text, "a paused clone does not answer"
    assert lines[-1] == "clone> echo: back"
    assert not any("echo: /clone" in line for line in lines), "commands never reach the model"


async def test_the_clones_words_print_as_typed_never_as_markup(make_settings, redis_url, make_worker, monkeypatch):
    settings = make_settings(bot={"pause_min_s": 0, "pause_max_s": 0})
    missing, lines = await _chat_with_worker(settings, redis_url, make_worker, ["[laughs] ok [/] [bold]x"],
                                             monkeypatch)
    assert missing == 0 and lines == ["clone> echo: [laughs] ok [/] [bold]x"]


def test_ctrl_c_does_not_wait_for_a_line_being_read(tmp_path):
    """A reader blocked on stdin must not keep the process alive after the chat is cancelled."""
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import asyncio
        from bot.terminal import LineReader

        async def main():
            reader = LineReader(interactive=False)
            try:
                await asyncio.wait_for(reader.read("you> "), 0.3)
            except TimeoutError:
                print("gave up waiting")

        asyncio.run(main())
    """)
    # stdin is a pipe kept open that never sends a line: the reader thread stays blocked in readline().
    read_end, write_end = os.pipe()
    try:
        process = subprocess.run([sys.executable, "-c", script], stdin=read_end, capture_output=True, text=True,
                                 timeout=20)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert process.returncode == 0 and "gave up waiting" in process.stdout, process.stderr
