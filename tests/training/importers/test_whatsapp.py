"""WhatsApp "Export chat": Android and iOS text, 24- and 12-hour, year-first lines, date order, zips, media."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.importers.base import Owner, Source, clean_name, clean_text
from training.importers.detect import detect_format, import_file
from training.importers.messages import Kind
from training.importers.whatsapp import _survey, parse_lines, sniff_zip

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports" / "whatsapp"
ANDROID = EXPORTS / "WhatsApp Chat with Ann Lee.txt"
IOS = EXPORTS / "WhatsApp Chat - Hiking Crew" / "_chat.txt"
ZIP = EXPORTS / "WhatsApp Chat - Bo Tanaka.zip"
YEAR_FIRST = EXPORTS / "WhatsApp Chat with Lakeside Book Club.txt"


def test_detected():
    assert detect_format(ANDROID) == detect_format(IOS) == "whatsapp"


def test_android_24_hour_day_first():
    result = import_file(ANDROID, owner="mia chen", tz="Europe/London")
    assert {(m.chat_name, m.chat_type) for m in result.messages} == {("Ann Lee", "dm")}
    summary = [(m.sender_name, m.is_owner, m.kind, m.text) for m in result.messages]
    assert summary == [
        ("system", False, Kind.SYSTEM, "Messages and calls are end-to-end encrypted. No one outside of this chat, "
                                       "not even WhatsApp, can read or listen to them. Tap to learn more."),
        ("Ann Lee", False, Kind.TEXT, "morning!! did you see the game"),
        ("Mia Chen", True, Kind.TEXT, "no 😭 spoilers pls"),
        ("Mia Chen", True, Kind.TEXT, "ok fine tell me"),
        ("Ann Lee", False, Kind.MEDIA, ""),
        ("Ann Lee", False, Kind.TEXT, "look at this\nit's from the top\n\nof the hill"),
        ("Mia Chen", True, Kind.TEXT, "wow"),
        ("Mia Chen", True, Kind.SYSTEM, "This message was deleted"),
        ("Ann Lee", False, Kind.EMOJI, "😂😂😂"),
        ("Mia Chen", True, Kind.TEXT, "see you at 7 - bring the map: the old one"),
    ]
    assert result.messages[4].timestamp.isoformat() == "2023-03-13T18:45:00+00:00"  # 13/03: day first
    assert result.messages[6].extra == {"edited": True}
    assert result.messages[7].extra == {"recalled": True}
    assert result.messages[5].source.endswith("WhatsApp Chat with Ann Lee.txt:6")


def test_ios_12_hour_month_first_group():
    result = import_file(IOS, owner="Mia Chen", tz="America/New_York")
    assert {(m.chat_name, m.chat_type) for m in result.messages} == {("Hiking Crew", "group")}
    by_line = {m.message_id: m for m in result.messages}
    assert by_line["1"].kind is Kind.SYSTEM and by_line["1"].sender_name == "system"
    assert by_line["2"].text == "Ann Lee created group “Hiking Crew”"
    assert by_line["4"].text == "me!! 🙋\u200d♀️"               # the emoji's zero-width joiner survives
    assert (by_line["5"].kind, by_line["5"].sender_name) == (Kind.MEDIA, "Tom Park")
    assert (by_line["6"].kind, by_line["6"].text) == (Kind.STICKER, "[sticker]")
    assert by_line["6"].timestamp.isoformat() == "2023-03-12T12:01:30-04:00"  # 12 PM is noon; DST began
    assert by_line["7"].text == "see you at the trailhead\nbring water"
    assert by_line["9"].kind is Kind.MEDIA
    assert by_line["10"].timestamp.hour == 0  # 12:10 AM


def test_out_of_order_line_is_sorted_and_reported():
    result = import_file(IOS, owner="Mia Chen", tz="UTC")
    assert result.stats.out_of_order == 1
    assert [m.message_id for m in result.messages][-3:] == ["10", "7", "9"]
    stamps = [m.timestamp for m in result.messages]
    assert stamps == sorted(stamps)


def test_ambiguous_dates_default_and_note(tmp_path):
    path = tmp_path / "WhatsApp Chat with Bo.txt"
    path.write_text("01/02/2023, 10:00 - Bo: hi\n01/02/2023, 10:01 - Me: hey\n", encoding="utf-8")
    result = import_file(path, owner="Me", tz="UTC")
    assert result.messages[0].timestamp.date().isoformat() == "2023-02-01"
    assert "day-first" in result.stats.notes[0]


def test_contradictory_dates_are_an_error(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("13/02/2023, 10:00 - Bo: hi\n02/13/2023, 10:01 - Me: hey\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"chat.txt: line 2: dates are neither consistently day-first nor "
                                         r"month-first \(month-first here, day-first on line 1\)"):
        import_file(path, owner="Me", tz="UTC")


def test_year_first_locale(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("2023-02-13 10:00 - Bo: hej\n2023-02-13 10:01 - Me: hej hej\n", encoding="utf-8")
    result = import_file(path, owner="Me", tz="UTC", fmt="whatsapp")
    assert [m.timestamp.day for m in result.messages] == [13, 13] and result.stats.owner_messages == 1


def test_zip_as_the_phone_shares_it_is_read_in_place():
    result = import_file(ZIP, owner="Mia Chen", fmt="whatsapp", tz="Europe/London")
    assert {(m.chat_name, m.chat_type) for m in result.messages} == {("Bo Tanaka", "dm")}
    summary = [(m.sender_name, m.is_owner, m.kind, m.text) for m in result.messages]
    assert summary == [
        ("system", False, Kind.SYSTEM, "Messages and calls are end-to-end encrypted. No one outside of this chat, "
                                       "not even WhatsApp, can read or listen to them."),
        ("Bo Tanaka", False, Kind.TEXT, "did you get home ok?"),
        ("Mia Chen", True, Kind.TEXT, "yes! train was packed though"),
        ("Mia Chen", True, Kind.TEXT, "how's the knee"),
        ("Bo Tanaka", False, Kind.MEDIA, ""),
        ("Bo Tanaka", False, Kind.TEXT, "the physio said two more weeks\nno running till then"),
        ("Mia Chen", True, Kind.TEXT, "ugh 😩"),
        ("system", False, Kind.SYSTEM, "Missed voice call"),
        ("Mia Chen", True, Kind.TEXT, "lunch friday?"),
        ("Bo Tanaka", False, Kind.MEDIA, ""),
        ("Mia Chen", True, Kind.SYSTEM, "You deleted this message."),
        ("Bo Tanaka", False, Kind.TEXT, "happy may!! 🌸"),
        ("Mia Chen", True, Kind.MEDIA, "from the walk yesterday"),
        ("Mia Chen", True, Kind.TEXT, "the lake was glass"),
    ]
    assert result.messages[4].timestamp.isoformat() == "2023-04-05T18:02:11+01:00"   # 5 April, 6 pm, BST
    assert result.messages[-1].extra == {"edited": True}
    assert result.messages[5].source.endswith("WhatsApp Chat - Bo Tanaka.zip:6")
    assert result.stats.notes[0] == "read _chat.txt from the zip archive; 3 media file(s) left unread (2 jpg, 1 opus)"
    assert result.stats.owner_messages == 6 and result.stats.out_of_order == 0


def test_sniff_zip_looks_at_the_chat_inside():
    assert sniff_zip(ZIP) > 10
    assert sniff_zip(ANDROID) == sniff_zip(EXPORTS / "missing.zip") == 0


def test_android_zip_with_a_named_chat_reads_like_the_text(tmp_path):
    path = tmp_path / "WhatsApp Chat with Ann Lee.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("WhatsApp Chat with Ann Lee.txt", ANDROID.read_bytes())
        archive.writestr("IMG-20230313-WA0001.jpg", b"\xff\xd8\xff\xe0" + bytes(64))
        archive.writestr("__MACOSX/._WhatsApp Chat with Ann Lee.txt", b"\x00\x05\x16\x07")
    zipped = import_file(path, owner="mia chen", fmt="whatsapp", tz="Europe/London")
    plain = import_file(ANDROID, owner="mia chen", fmt="whatsapp", tz="Europe/London")
    assert [(m.timestamp, m.sender_name, m.kind, m.text) for m in zipped.messages] == \
        [(m.timestamp, m.sender_name, m.kind, m.text) for m in plain.messages]
    assert zipped.messages[0].chat_name == "Ann Lee"
    assert zipped.stats.notes[0].endswith("1 media file(s) left unread (1 jpg)")


@pytest.mark.parametrize(("entries", "message"), [
    ({"photo.jpg": b"\xff\xd8"}, r"zip archive without a chat text file"),
    ({"a/_chat.txt": b"x", "b/_chat.txt": b"y"}, r"zip archive with 2 chat text files \(a/_chat.txt, b/_chat.txt\)"),
    ({"_chat.txt": b"\x00\x01binary\x00"}, r"is a binary file"),
])
def test_zips_without_one_readable_chat_are_one_line_errors(tmp_path, entries, message):
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    with pytest.raises(InputError, match=rf"^{tmp_path}/export.zip: .*{message}") as caught:
        import_file(path, owner="Me", fmt="whatsapp", tz="UTC")
    assert "\n" not in str(caught.value)


def test_a_damaged_zip_entry_names_the_line(tmp_path):
    # Longer than the 64 KB head that is read first, so the damage shows while reading lines.
    lines = "".join(f"14/05/2023, 21:{n % 60:02d} - Bo: message {n}\n" for n in range(3000)).encode()
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("_chat.txt", lines)
    data = bytearray(path.read_bytes())
    spot = data.index(b"message 2999")
    data[spot] ^= 0x20  # stored, so the bytes read back wrong and the CRC check at the end fails
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"export.zip: line \d+: cannot be read: Bad CRC-32"):
        import_file(path, owner="Me", fmt="whatsapp", tz="UTC")


# -- regressions: year-first lines and date order (each failed on the code before them) -------

def test_year_first_lines_with_a_dot_after_the_time(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("2023/05/14, 21:03. - Ann: hi\n2023/05/14, 21:04. - Me: hey\nhow are you\n", encoding="utf-8")
    result = import_file(path, owner="Me", fmt="whatsapp", tz="UTC")
    assert [(m.timestamp.isoformat(), m.sender_name, m.text) for m in result.messages] == [
        ("2023-05-14T21:03:00+00:00", "Ann", "hi"), ("2023-05-14T21:04:00+00:00", "Me", "hey\nhow are you")]


def test_mixed_line_styles_each_read_as_written():
    result = import_file(YEAR_FIRST, owner="Mia Chen", fmt="whatsapp", tz="UTC")
    assert {(m.chat_name, m.chat_type) for m in result.messages} == {("Lakeside Book Club", "group")}
    summary = [(m.message_id, m.timestamp.strftime("%m-%d %H:%M"), m.sender_name, m.is_owner, m.kind, m.text)
               for m in result.messages]
    assert summary[3:] == [
        ("4", "05-14 21:05", "Kenji Sato", False, Kind.TEXT, "welcome all 📚\nfirst book: the left hand of darkness"),
        ("6", "05-14 21:06", "נועה", False, Kind.TEXT, "שלום! I'm in"),          # RTL marks gone from the name
        ("7", "05-14 21:07", "Mia Chen", True, Kind.TEXT, "same here"),           # and the zero-width space
        ("8", "05-14 21:08", "Mia Chen", True, Kind.MEDIA, ""),
        ("9", "05-15 07:30", "Kenji Sato", False, Kind.TEXT, "first meeting:\n2023/05/20 works for everyone?"),
        ("11", "05-15 07:31", "נועה", False, Kind.TEXT, "כן 👍"),
        ("12", "05-15 07:45", "Mia Chen", True, Kind.SYSTEM, "This message was deleted"),
        ("13", "05-15 08:02", "Mia Chen", True, Kind.TEXT, "sorry, new phone 🙈"),   # day-first from here on
        ("14", "05-15 08:03", "Mia Chen", True, Kind.TEXT, "saturday works"),
        ("15", "05-16 19:00", "Kenji Sato", False, Kind.TEXT, "see you at 3 - bring the book: any edition"),
        ("16", "05-16 19:01", "system", False, Kind.SYSTEM, "נועה left"),
    ]
    assert [m.kind for m in result.messages[:3]] == [Kind.SYSTEM] * 3
    assert result.stats.out_of_order == 0 and result.stats.notes == []


def test_twelve_hour_day_first_is_read_from_the_order_of_its_dates(tmp_path):
    # Every date is 12 or under, so no number proves the order; only day-first runs forward in time.
    path = tmp_path / "chat.txt"
    path.write_text("03/04/2023, 9:14 am - Bo: hi\n11/04/2023, 9:15 am - Me: hey\n02/05/2023, 8:30 pm - Bo: may!\n",
                    encoding="utf-8")
    result = import_file(path, owner="Me", fmt="whatsapp", tz="UTC")
    assert [m.timestamp.date().isoformat() for m in result.messages] == ["2023-04-03", "2023-04-11", "2023-05-02"]
    assert "the order that keeps the messages in time order" in result.stats.notes[0]


def test_the_proof_on_the_last_line_of_a_long_twelve_hour_file_decides(tmp_path):
    # One ambiguous day all along (so neither time order nor the 12-hour default can tell), then the 13th.
    lines = [f"05/06/2023, {1 + n // 360}:{n // 6 % 60:02d} PM - Bo: message {n}\n" for n in range(3000)]
    path = tmp_path / "chat.txt"
    path.write_text("".join(lines) + "13/06/2023, 9:00 PM - Me: the 13th\n", encoding="utf-8")
    result = import_file(path, owner="Me", fmt="whatsapp", tz="UTC")
    assert result.messages[0].timestamp.date().isoformat() == "2023-06-05"   # 5 June, not 6 May
    assert result.messages[-1].timestamp.date().isoformat() == "2023-06-13" and result.stats.notes == []


def test_a_pasted_line_of_the_other_order_stays_message_text(tmp_path):
    lines = [f"[{d:02d}/05/2023, 10:00:00] Bo: day {d}" for d in range(13, 31)]
    lines.insert(5, "[05/14/2023, 09:00:00] Ann: forwarded from a US phone")   # pasted into Bo's message
    path = tmp_path / "chat.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = import_file(path, owner="Bo", fmt="whatsapp", tz="UTC")
    assert len(result.messages) == 18
    assert result.messages[4].text == "day 17\n[05/14/2023, 09:00:00] Ann: forwarded from a US phone"
    assert "1 line(s) that read only month-first (first: line 6) are kept as text" in result.stats.notes[0]


def _parse_with_order(path: Path, date_order: str | None):
    from training.importers import whatsapp
    src = Source(path, "whatsapp", Owner("Me"), UTC, date_order=date_order)
    return [m.timestamp.date().isoformat() for m in whatsapp.parse(src)], src.stats.notes


def test_date_order_override(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("01/02/2023, 10:00 - Bo: hi\n", encoding="utf-8")
    assert _parse_with_order(path, None) == (["2023-02-01"], [
        "every date could be day-first or month-first; assumed day-first: pass the date order (dmy or mdy) "
        "if that is wrong"])
    assert _parse_with_order(path, "mdy") == (["2023-01-02"], [])
    path.write_text("23/02/01, 10:00 - Bo: hej\n2023-02-13 10:01 - Me: hej hej\n", encoding="utf-8")
    assert _parse_with_order(path, "ymd") == (["2023-02-01", "2023-02-13"], [])
    with pytest.raises(InputError, match=r"chat.txt: unknown date order 'ydm'; one of: dmy, mdy, ymd"):
        _parse_with_order(path, "ydm")


def test_binary_and_latin1_files_are_refused(tmp_path):
    latin = tmp_path / "chat.txt"
    latin.write_bytes("12/03/2023, 09:14 - Zoë: olá\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"chat.txt: line 1: is not UTF-8 text"):
        import_file(latin, owner="Me", fmt="whatsapp")


def test_a_200_mb_sparse_file_is_refused_from_its_first_bytes(tmp_path):
    path = tmp_path / "chat.txt"
    with path.open("wb") as handle:
        handle.write(b"12/03/2023, 09:14 - Bo: hi\n")
        handle.truncate(200 * 1024 * 1024)  # sparse: NUL bytes, no disk used
    with pytest.raises(InputError, match=r"chat.txt: is a binary file"):
        import_file(path, owner="Me", fmt="whatsapp", tz="UTC")


def test_huge_single_line_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "chat.txt"
    with path.open("wb") as handle:
        handle.write(b"12/03/2023, 09:14 - Bo: hi\n12/03/2023, 09:15 - Me: ")
        handle.write(b"x" * (17 * 1024 * 1024))
    with pytest.raises(InputError, match=r"line 2: is longer than 16 MB"):
        import_file(path, owner="Me", fmt="whatsapp", tz="UTC")


def _src() -> Source:
    return Source(Path("WhatsApp Chat with Prop.txt"), "whatsapp", Owner(["me"]), UTC)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=30), st.sampled_from(["dmy", "mdy", "ymd"]))
def test_any_lines_never_raise(lines, order):
    for message in parse_lines(_src(), enumerate(lines, 1), order=order):
        assert message.timestamp.tzinfo is not None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=30))
def test_survey_raises_only_input_errors(lines):
    try:
        order, senders = _survey(_src(), enumerate(lines, 1))
    except InputError:
        return
    assert order in ("dmy", "mdy", "ymd") and len(senders) <= 3


def _render(style: str, day_first: bool, when: datetime, name: str, text: str) -> str:
    date = f"{when:%d/%m/%Y}" if day_first else f"{when.month}/{when.day}/{when:%y}"
    if style.endswith("12"):
        clock = f"{when.hour % 12 or 12}:{when:%M}" + (f":{when:%S}" if style.startswith("ios") else "")
        clock += "\u202fPM" if when.hour >= 12 else "\u202fAM"
    else:
        clock = f"{when:%H:%M}" + (f":{when:%S}" if style.startswith("ios") else "")
    if style.startswith("ios"):
        return f"[{date}, {clock}] {name}: {text}"
    return f"{date}, {clock} - {name}: {text}"


_NAME = st.text(alphabet=st.sampled_from("AnnBoMia Chen李明😀 "), min_size=1, max_size=10).filter(
    lambda n: clean_name(n) != "" and ":" not in n)
_TEXT = st.lists(st.text(alphabet=st.sampled_from("hi there, ok? 好的😂:-/"), min_size=1, max_size=25).filter(
    lambda t: t.strip() != ""), min_size=1, max_size=3)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(style=st.sampled_from(["android24", "android12", "ios24", "ios12"]), day_first=st.booleans(),
       messages=st.lists(st.tuples(st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2030, 1, 1)),
                                   _NAME, _TEXT), min_size=1, max_size=10))
def test_written_chats_read_back(tmp_path, style, day_first, messages):
    messages = sorted(messages, key=lambda m: m[0])
    # One unambiguous date so the order can be told, as in any real chat longer than 12 days.
    anchor = datetime(2014, 12, 25, 10, 0)
    rows = [(anchor, "Anchor", ["start"]), *messages]
    text = "\n".join(_render(style, day_first, when, name, "\n".join(lines)) for when, name, lines in rows)
    path = tmp_path / "WhatsApp Chat with Prop.txt"
    path.write_text(text + "\n", encoding="utf-8")
    result = import_file(path, owner="Anchor", tz="UTC", fmt="whatsapp")
    seconds = style.startswith("ios")
    expected = [(when.replace(microsecond=0, second=when.second if seconds else 0, tzinfo=UTC), clean_name(name),
                 clean_text("\n".join(lines))) for when, name, lines in rows]
    assert [(m.timestamp, m.sender_name, m.text) for m in result.messages] == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), as_zip=st.booleans(), text=st.text(max_size=200))
def test_any_zip_or_bytes_raise_only_input_errors(tmp_path, data, as_zip, text):
    path = tmp_path / "export.zip"
    if as_zip:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("_chat.txt", text.encode("utf-8", "surrogatepass") + data)
    else:
        path.write_bytes(b"PK\x03\x04" + data)
    try:
        import_file(path, owner="Me", fmt="whatsapp", tz="UTC")
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))
