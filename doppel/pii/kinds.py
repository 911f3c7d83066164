"""Detectors for the kinds of private values that are not plain numbers, run on normalized text
(``doppel.pii.normalize``): Hong Kong and Taiwan IDs (by their check digits), passport numbers,
WeChat IDs and licence plates (by their shapes and, where the shape is not enough, a context
word), a password that is a date, e-mails spelled out ("name at domain dot com", ``[at]``,
``(at)``, spaces around ``@``, "name 艾特 qq 点 com") or with internationalized names, and an
estate named as where someone lives. All of them are ``ID`` but the password (``SECRET``), the
e-mails (``EMAIL``) and the estate (``ADDRESS``).

Each detector returns (type, start, end) spans of the normalized text. Tested in
``tests/doppel/test_pii_spellings.py``.
"""

from __future__ import annotations

import re

from doppel.pii.validators import hk_id_ok, tw_id_ok

Span = tuple[str, int, int]

# The words these kinds need when a text has no digit, searched in the lower-cased text; a text
# with neither is not looked at.
TRIGGER_FIRST = "a@艾护護pv微wx小花家新公山社密口"
TRIGGER_WORDS = (r"(?<![a-z])at(?![a-z])|@|艾特|护照|護照|passport|微信|vx|wx|wechat|weixin|"
                 r"小区|花园|家园|新村|公寓|山庄|社区|密码|密碼|口令|password|passcode|pin|pwd")
TRIGGER = re.compile(f"(?=[{TRIGGER_FIRST}])(?:{TRIGGER_WORDS})")

HK_ID = re.compile(r"(?<![A-Za-z0-9])([A-Z]{1,2})(\d{6})\s?(?:[(（]\s?([0-9A])\s?[)）]|([0-9A]))(?![A-Za-z0-9])")
HK_BEFORE = re.compile(r"(?:香港|港|HK|hk|Hong Kong|身份证|身份證|ID)[^\n<>]{0,12}$")
TW_ID = re.compile(r"(?<![A-Za-z0-9])[A-Za-z][1289]\d{8}(?![A-Za-z0-9])")

PASSPORT = re.compile(
    r"(?:护照|護照|(?i:passport))(?:\s?(?:号码|號碼|号|號|(?i:no\.?|number|num|#|id)))?\s*(?:(?i:is)\s+|是|为|:|：)?\s*"
    r"(?P<v>[A-Za-z]{1,2}[ -]?\d{7,8}|[A-Za-z]{1,2}[ -]?\d{4}[ -]\d{3,4}|\d{8,10}|"
    r"(?=[A-Za-z0-9]*\d[A-Za-z0-9]*\d)[A-Za-z0-9]{8,9})(?![A-Za-z0-9])")

WECHAT = re.compile(
    r"(?:微信|(?<![A-Za-z])(?i:vx|wx|weixin|wechat)(?![A-Za-z]))(?P<label>\s?(?:号|號|(?i:id)|账号))?\s*"
    r"(?P<sep>(?i:is)\s+|是|为|:|：)?\s*(?:加)?\s*(?P<v>[A-Za-z][-_A-Za-z0-9]{5,19})(?![-_A-Za-z0-9])")
WXID = re.compile(r"(?<![A-Za-z0-9])wxid_[A-Za-z0-9]{3,24}(?![A-Za-z0-9])")

PLATE = re.compile(
    r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-HJ-NP-Za-hj-np-z]\s?[·•・.\- ]?\s?"
    r"(?P<tail>[DFdf][A-HJ-NP-Za-hj-np-z0-9]\d{4}|\d{5}[DFdf]|[A-HJ-NP-Za-hj-np-z0-9]{5})(?![A-Za-z0-9])")

_DATE = (r"(?:\d{4}[./-]\d{1,2}[./-]\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}年\d{1,2}月\d{1,2}[日号]?|"
         r"\d{4,8})(?!\d)")
DATE_SECRET = re.compile(
    rf"(?:密码|密碼|口令|(?i:pin码?|password|passcode|pwd|pw)\b)[^\n<>]{{0,12}}?"
    rf"(?:生日|出生日期|出生年月日?|(?i:birthday|bday|b-day|birth ?date|date of birth|dob)\b)"
    rf"[^\n\d<>]{{0,4}}(?P<v>{_DATE})")

# -- e-mails spelled out ----------------------------------------------------------------------------

_AT = r"(?:\s*[\[({<]\s*(?i:at)\s*[\])}>]\s*|\s+(?:at|AT)\s+|\s*@\s*|\s*艾特\s*)"
_DOT = r"(?:\s*[\[({<]\s*(?i:dot)\s*[\])}>]\s*|\s+(?:dot|DOT)\s+|\.|\s*[点點]\s*)"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_IDN_TLDS = "中国|中國|公司|网络|網絡|在线|广告|移动|香港|台湾|台灣|рф|онлайн|сайт"
SPELLED_EMAIL = re.compile(
    rf"(?<![A-Za-z0-9_.%+'-])(?P<local>[\w%+-][\w.%+-]{{0,63}}(?:\s+(?:dot|DOT)\s+[\w%+-]+)*)(?P<at>{_AT})"
    rf"(?P<domain>{_LABEL}(?:{_DOT}{_LABEL})*{_DOT}(?P<tld>[A-Za-z]{{2,24}}|{_IDN_TLDS}))(?![A-Za-z0-9-])")
_MAIL_TLDS = frozenset(
    "com net org cn edu gov io me co uk jp de fr ru info biz us ca au hk tw sg kr in it es nl se ch app dev ai "
    "xyz top tech mail email".split())
_MAIL_HOSTS = frozenset("gmail qq 163 126 outlook hotmail yahoo foxmail sina sohu icloud proton protonmail aliyun "
                        "live msn yeah 139 gmx yandex mail".split())
# A sentence word before "at" is no mailbox: "look it up at google dot com".
_NOT_LOCAL = frozenset(
    "a an the i im i'm me you we us he him she her they them it its is are was were be been am look looking looked "
    "arrive arrived meet met see seen stay staying work works worked working live lives lived buy bought sell sold "
    "shop shopping find found available check sign signed up in out home here there that this what where one "
    "someone anyone everyone something anything online apply download listed posted hosted based located try go "
    "going went get got order ordered now only just school office store site website page link visit sale jobs "
    "job be am it's that's lunch dinner back off on".split())
_MAIL_CONTEXT = re.compile(r"e-?mail|mail|邮箱|郵箱|邮件|contact|address|write|reach|send|简历", re.IGNORECASE)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_CN_LOCAL_STOP = frozenset("我你他她的是在到给发投寄件箱邮：:")
_DOT_SPLIT = re.compile(_DOT)
_ASCII_TAIL = re.compile(r"[A-Za-z0-9_.%+-]+$")
_AT_MARK = re.compile(r"[@\[({<]")
_SPACED_DOT = re.compile(r"\s\.|\.\s")

# -- estates ------------------------------------------------------------------------------------------

ESTATE = re.compile(
    r"(?:住在|住|家在|搬到了?|搬去|地址是?|寄到|送到)\s?"
    r"(?P<v>(?:(?![我你他她这那们的在住到是了个])[\u4e00-\u9fff]){2,6}?(?:小区|花园|家园|新村|公寓|山庄|社区))")


def find_kinds(text: str, lower: str, has_digit: bool) -> list[Span]:
    """Every finding of these kinds in normalized ``text`` (``lower``: the same, lower-cased)."""
    found: list[Span] = []
    gates = {m.lastgroup for m in _GATES.finditer(lower)}
    if has_digit:
        if _LETTER_DIGITS.search(text):
            for match in HK_ID.finditer(text):
                check = match.group(3) or match.group(4)
                if hk_id_ok(match.group(1), match.group(2), check) and \
                        (match.group(3) or HK_BEFORE.search(text[max(0, match.start() - 16):match.start()])):
                    found.append(("ID", match.start(), match.end()))
            found += [("ID", m.start(), m.end()) for m in TW_ID.finditer(text) if tw_id_ok(m.group())]
        if "passport" in gates:
            # A passport number: six digits or more, or (German, Dutch: letters and digits) two.
            found += [("ID", m.start("v"), m.end("v")) for m in PASSPORT.finditer(text)
                      if sum(c.isdigit() for c in m.group("v")) >= (2 if len(m.group("v")) >= 8 else 6)]
        for match in PLATE.finditer(text):
            if sum(c.isdigit() for c in match.group("tail")) >= 3:
                found.append(("ID", match.start(), match.end()))
        if "birthday" in gates:
            found += [("SECRET", m.start("v"), m.end("v")) for m in DATE_SECRET.finditer(text)]
    if "wechat" in gates:
        for match in WECHAT.finditer(text):
            value = match.group("v")
            if match.group("label") or match.group("sep") or any(not c.isalpha() for c in value) or \
                    _CJK.search(text[max(0, match.start() - 1):match.start() + 2]):
                found.append(("ID", match.start("v"), match.end("v")))
        found += [("ID", m.start(), m.end()) for m in WXID.finditer(text)]
    if "at" in gates:
        found += _spelled_emails(text)
    if "estate" in gates:
        found += [("ADDRESS", m.start("v"), m.end("v")) for m in ESTATE.finditer(text)]
    return found


# What each detector needs, for a cheap look before it runs.
_LETTER_DIGITS = re.compile(r"[A-Za-z]\d{6}")
_GATES = re.compile(r"(?P<passport>护照|護照|passport)|(?P<birthday>生日|出生|birth|bday|b-day|dob)|"
                    r"(?P<wechat>微信|vx|wx|weixin|wechat)|(?P<at>@|艾特|(?<![a-z])at(?![a-z]))|"
                    r"(?P<estate>小区|花园|家园|新村|公寓|山庄|社区)")


def _spelled_emails(text: str) -> list[Span]:
    found = []
    position = 0
    while match := SPELLED_EMAIL.search(text, position):
        position = match.start() + 1
        local, at, domain = match.group("local"), match.group("at"), match.group("domain")
        start = match.start()
        if _CJK.search(local):
            # No space ends a mailbox name after Chinese words: an ASCII name starts after them,
            # a Chinese one after the last word of the sentence (at most four characters).
            ascii_tail = _ASCII_TAIL.search(local)
            keep = ascii_tail.start() if ascii_tail else len(local)
            while not ascii_tail and keep > 0 and local[keep - 1] not in _CN_LOCAL_STOP and len(local) - keep < 4:
                keep -= 1
            start += keep
            local = local[keep:]
        if at == "@" and (local + domain).isascii():
            continue  # a plain address: the e-mail pattern judges it (photo_1@02-01-2023_10-00-00.jpg is none)
        labels = [p for p in _DOT_SPLIT.split(domain) if p]
        if len(local) < 2 or local.split()[-1].lower() in _NOT_LOCAL or \
                any(label.lower() in ("dot", "at") for label in labels):
            continue
        if not _AT_MARK.search(at):
            # The word "at": a mailbox by its shape, its host or what the sentence is about.
            if match.group("tld").lower() not in _MAIL_TLDS or _SPACED_DOT.search(domain):
                continue
            near = text[max(0, start - 30):match.end() + 30]
            if not (re.search(r"[0-9._-]", local) or labels[0].lower() in _MAIL_HOSTS or _MAIL_CONTEXT.search(near)):
                continue
        found.append(("EMAIL", start, match.end()))
        position = match.end()
    return found
