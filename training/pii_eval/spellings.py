"""Private values in the spellings people type to get past a filter, and the kinds of values the
first evaluation set does not plant, for the adversarial evaluation set
(``training.pii_eval.adversarial``).

Spellings of a digit string (``spell``): full-width, Arabic-Indic, Persian and Devanagari digits,
mathematical bold and circled digits, one by one with spaces, groups split by dots, slashes or
underscores, zero-width spaces between groups, Chinese numerals (with 幺 for one, as people read
phone numbers aloud), English number words, and half-digits-half-numerals. E-mails spelled out
(``spelled_email``: "at"/"dot", ``[at]``, ``(at)``, full-width ``＠``, spaces around ``@``) and
with internationalized domains. Chinese addresses with Chinese numerals or full-width door
numbers and estate/building/unit/room forms. And the new kinds: the old 15-digit CN ID, US SSNs,
passport numbers, Hong Kong and Taiwan IDs (with their check digits, computed here on their own,
not with the scrubber's validators), QQ numbers, WeChat IDs, licence plates, and a password that
is a date.

Every function takes a ``random.Random``, so the set is reproducible. Tested in
``tests/doppel/test_pii_spellings.py`` (the check digits, the shipped adversarial set).
"""

from __future__ import annotations

import random

from training.pii_eval.fakes import cn_id, digits, token

# -- digit spellings ------------------------------------------------------------------------------

_ZH = "零一二三四五六七八九"
_EN = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_DIGIT_BLOCKS = {"arabic": 0x0660, "persian": 0x06F0, "devanagari": 0x0966, "math": 0x1D7CE, "fullwidth": 0xFF10}
# The styles of ``spell`` and how often each is drawn (the forms most often).
STYLES = ("fullwidth", "fullwidth", "fullwidth_grouped", "arabic", "persian", "spaced", "spaced", "dotted",
          "dotted", "slashed", "underscored", "zwsp", "zh", "zh", "zh_yao", "en", "en", "math", "circled",
          "mixed_zh", "devanagari")


def fullwidth(text: str) -> str:
    """ASCII letters, digits and symbols as their full-width forms (spaces stay)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _split(number: str, groups: tuple[int, ...]) -> list[str]:
    parts, at = [], 0
    for size in groups:
        if at < len(number):
            parts.append(number[at:at + size])
            at += size
    if at < len(number):
        parts.append(number[at:])
    return parts


def spell(number: str, groups: tuple[int, ...], style: str, rng: random.Random) -> str:
    """``number`` (ASCII digits, maybe a trailing X) in ``style``; ``groups`` are the sizes of
    the groups that grouped styles write (3-4-4 for a CN mobile, 4s for a card)."""
    if style in _DIGIT_BLOCKS:
        base = _DIGIT_BLOCKS[style]
        mapped = "".join(chr(base + int(c)) if c.isdigit() else (fullwidth(c) if style == "fullwidth" else c)
                         for c in number)
        return mapped
    if style == "fullwidth_grouped":
        return rng.choice((" ", "－", "\u3000")).join(fullwidth(p) for p in _split(number, groups))
    if style == "circled":
        return "".join("⓪" if c == "0" else chr(0x245F + int(c)) if c.isdigit() else c for c in number)
    if style == "spaced":
        return " ".join(number)
    if style in ("dotted", "slashed", "underscored", "zwsp"):
        sep = {"dotted": ".", "slashed": "/", "underscored": "_", "zwsp": "\u200b"}[style]
        return sep.join(_split(number, groups))
    if style in ("zh", "zh_yao"):
        zero = rng.choice("零〇")
        table = {**dict(zip("0123456789", zero + _ZH[1:], strict=True)), **({"1": "幺"} if style == "zh_yao" else {})}
        return "".join(table.get(c, c) for c in number)
    if style == "mixed_zh":
        head = groups[0]
        return number[:head] + "".join(_ZH[int(c)] if c.isdigit() else c for c in number[head:])
    if style == "en":
        zero = rng.choice(("zero", "oh"))
        sep = rng.choice((" ", " ", "-", ", "))
        words = [zero if c == "0" else _EN[int(c)] if c.isdigit() else c for c in number]
        return sep.join(words)
    raise ValueError(f"unknown style {style}")


def zh_number(value: int) -> str:
    """A positional Chinese numeral: 88 -> 八十八, 205 -> 二百零五, 1201 -> 一千二百零一."""
    if value == 0:
        return "零"
    out, zero = "", False
    for unit, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = value // unit % 10
        if digit:
            if zero and out:
                out += "零"
            out += ("" if (digit == 1 and unit == 10 and not out) else _ZH[digit]) + name
            zero = False
        elif out:
            zero = True
    return out


# -- phones, IDs, cards ---------------------------------------------------------------------------

_MOBILE_PREFIXES = ("130", "131", "135", "136", "138", "139", "150", "152", "158", "159", "166", "177", "180",
                    "186", "187", "188", "189", "191", "198", "199")


def cn_mobile_digits(rng: random.Random) -> str:
    return rng.choice(_MOBILE_PREFIXES) + digits(rng, 8)


def us_phone_digits(rng: random.Random) -> str:
    return f"{rng.randint(2, 9)}{digits(rng, 2)}{rng.randint(2, 9)}{digits(rng, 6)}"


def luhn_number(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + digits(rng, length - len(prefix) - 1)
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str(-total % 10)


def card_digits(rng: random.Random) -> str:
    prefix, length = rng.choice((("4", 16), ("51", 16), ("622202", 16), ("622848", 19), ("6225", 16),
                                 ("6011", 16), ("3528", 16), ("621700", 19)))
    return luhn_number(prefix, length, rng)


def cn_id15(rng: random.Random) -> str:
    """The first-generation resident ID: region, birth date as YYMMDD, three digits, no check."""
    region = rng.choice(("110105", "310104", "440305", "510107", "320102", "420106", "370202", "430104"))
    return f"{region}{rng.randint(40, 84):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{digits(rng, 3)}"


def cn_id18(rng: random.Random) -> str:
    return cn_id(rng).upper()


def ssn(rng: random.Random, sep: str = "-") -> str:
    """A US social security number in the issued ranges (area 001-899 but 666, group and serial not 0)."""
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def passport(rng: random.Random) -> str:
    return rng.choice((f"E{digits(rng, 8)}", f"E{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{digits(rng, 7)}",
                       f"G{digits(rng, 8)}", f"{rng.randint(1, 9)}{digits(rng, 8)}", f"K{digits(rng, 8)}",
                       f"TK{digits(rng, 7)}", f"C{token(rng, 8, 'CFGHJKLMNPRTVWXYZ0123456789')}"))


def hk_check(prefix: str, body: str) -> str:
    """The Hong Kong ID check digit: weights 9..2 over the (space-padded) letters and six digits, mod 11."""
    letters = prefix.rjust(2)
    values = [36 if c == " " else ord(c) - 55 for c in letters] + [int(c) for c in body]
    remainder = sum(v * w for v, w in zip(values, range(9, 1, -1), strict=True)) % 11
    return "0" if remainder == 0 else "A" if remainder == 1 else str(11 - remainder)


def hk_id(rng: random.Random, *, valid: bool = True) -> str:
    prefix = rng.choice(("A", "C", "D", "E", "G", "H", "K", "M", "P", "R", "Y", "Z", "WX", "XA"))
    body = digits(rng, 6)
    check = hk_check(prefix, body)
    if not valid:
        check = rng.choice([c for c in "0123456789A" if c != check])
    return rng.choice((f"{prefix}{body}({check})", f"{prefix}{body}({check})", f"{prefix}{body}{check}",
                       f"{prefix}{body}（{check}）"))


_TW_LETTERS = dict(zip("ABCDEFGHJKLMNPQRSTUVXYWZIO", range(10, 36), strict=True))


def tw_check(letter: str, body: str) -> str:
    """The Taiwan ID check digit: the letter's two digits weighted 1 and 9, then 8..1, sum mod 10."""
    code = _TW_LETTERS[letter]
    total = code // 10 + code % 10 * 9 + sum(int(d) * w for d, w in zip(body, range(8, 0, -1), strict=True))
    return str(-total % 10)


def tw_id(rng: random.Random, *, valid: bool = True) -> str:
    letter = rng.choice("ABCDEFGHJKLMNPQRSTUVXYWZ")
    body = rng.choice("12") + digits(rng, 7)
    check = tw_check(letter, body)
    if not valid:
        check = rng.choice([c for c in "0123456789" if c != check])
    return letter + body + check


def qq_number(rng: random.Random) -> str:
    return str(rng.randint(1, 9)) + digits(rng, rng.randint(5, 9))


_HANDLE_NAMES = ("zhangsan", "lily", "mike", "xiaoming", "chen", "wangwei", "amy", "kevin", "sunny", "tom", "jia",
                 "lucky", "momo", "ada")


def wechat_id(rng: random.Random) -> str:
    name = rng.choice(_HANDLE_NAMES)
    return rng.choice((f"{name}{rng.randint(10, 2024)}",
                       f"wxid_{token(rng, 12, 'abcdefghijklmnopqrstuvwxyz0123456789')}",
                       f"{name}_{rng.randint(1980, 2005)}", f"{name.title()}-{rng.randint(1, 99)}",
                       f"{name}{token(rng, 3, 'abcdefghijkmnpqrstuvwxyz')}{rng.randint(1, 9)}"))


PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def plate(rng: random.Random) -> str:
    head = rng.choice(PROVINCES) + rng.choice(_PLATE_LETTERS[:12])
    sep = rng.choice(("", "", "·", " ", "-", "•"))
    kind = rng.randrange(3)
    if kind == 0:  # new-energy
        tail = rng.choice("DF") + digits(rng, 5)
    elif kind == 1:
        tail = digits(rng, 5)
    else:
        tail = "".join(rng.choice(_PLATE_LETTERS + "0123456789") for _ in range(2)) + digits(rng, 3)
    return head + sep + tail


def birthday(rng: random.Random) -> str:
    y, m, d = rng.randint(1960, 2004), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice((f"{y}{m:02d}{d:02d}", f"{y}{m:02d}{d:02d}", f"{y % 100:02d}{m:02d}{d:02d}",
                       f"{m:02d}{d:02d}{y}", f"{m:02d}{d:02d}"))


# -- e-mails --------------------------------------------------------------------------------------

_LOCALS = ("zhang.san", "lisi88", "wang_wei", "jane.doe", "mike.chen", "liu1990", "amy.w", "bob.smith", "hr.team",
           "xiaohong", "tomlee", "sarah.k")
_DOMAINS = ("gmail.com", "qq.com", "163.com", "outlook.com", "company.cn", "foxmail.com", "hotmail.com", "acme.co.uk",
            "proton.me", "sina.com")
IDN_EMAILS = ("hans@bücher.de", "info@例子.中国", "用户@例子.广告", "李明@公司.cn", "josé@correo.es",
              "contact@müller-bau.de", "info@пример.рф", "张伟@中国移动.中国", "kontakt@straße.de", "mail@日本語.jp",
              "sales@ñandú.com.ar", "王芳@清华大学.cn")


def spelled_email(rng: random.Random) -> str:
    local, domain = rng.choice(_LOCALS), rng.choice(_DOMAINS)
    style = rng.randrange(10)
    if style == 0:
        return f"{local} at {domain.replace('.', ' dot ')}"
    if style == 1:
        return f"{local} AT {domain.replace('.', ' DOT ')}"
    if style == 2:
        at, dot = rng.choice((("[at]", "[dot]"), ("(at)", "(dot)"), ("{at}", "{dot}"), ("<at>", "<dot>")))
        spaced = rng.random() < 0.5
        joiner = " " if spaced else ""
        return joiner.join((local, at, domain.replace(".", f"{joiner}{dot}{joiner}")))
    if style == 3:
        return f"{local}{rng.choice(('[at]', '(at)', ' [at] ', ' (at) '))}{domain}"
    if style == 4:
        return f"{local}＠{domain}"
    if style == 5:
        return fullwidth(f"{local}@{domain}")
    if style == 6:
        return f"{local} @ {domain}" if rng.random() < 0.6 else f"{local} @{domain}"
    if style == 7:
        return f"{local} at {domain}"
    if style == 8:
        return f"{local.replace('.', ' dot ')} at {domain.replace('.', ' dot ')}"
    return rng.choice(IDN_EMAILS)


# -- addresses ------------------------------------------------------------------------------------

_ROADS = ("建国路", "中山路", "人民路", "解放大街", "淮海中路", "学院路", "长江路", "文三路", "和平街", "天府大道",
          "延安西路", "光华路", "深南大道", "珠江路", "新华街", "青年路")
_PLACES = ("北京市朝阳区", "上海市徐汇区", "广州市天河区", "深圳市福田区", "杭州市西湖区", "成都市锦江区", "", "", "")
ESTATES = ("阳光小区", "望京小区", "翠湖家园", "金色家园", "华侨新村", "世纪花园", "幸福里小区", "万科城市花园",
           "和平新村", "紫荆公寓", "丽都花园", "东方家园")


def _room(rng: random.Random, zh: bool) -> str:
    floor, door = rng.randint(1, 28), rng.randint(1, 4)
    if not zh:
        return f"{floor}{door:02d}"
    return spell(f"{floor}{door:02d}", (4,), "zh", rng) if rng.random() < 0.6 else zh_number(floor * 100 + door)


def zh_address(rng: random.Random) -> str:
    """A Chinese address spelled with Chinese numerals, full-width digits or as an estate/building/room."""
    kind = rng.randrange(6)
    door = rng.randint(1, 399)
    if kind == 0:
        return f"{rng.choice(_PLACES)}{rng.choice(_ROADS)}{zh_number(door)}号"
    if kind == 1:
        return f"{rng.choice(_PLACES)}{rng.choice(_ROADS)}{fullwidth(str(door))}号" + rng.choice(
            ("", f"{fullwidth(str(rng.randint(1, 12)))}栋{fullwidth(_room(rng, False))}室"))
    if kind == 2:
        return (f"{rng.choice(_ROADS)}{zh_number(door)}号{zh_number(rng.randint(1, 12))}栋"
                f"{zh_number(rng.randint(1, 6))}单元{_room(rng, True)}室")
    if kind == 3:
        return f"{rng.choice(ESTATES)}{rng.randint(1, 30)}栋{rng.randint(1, 6)}单元{_room(rng, False)}室"
    if kind == 4:
        return (f"{rng.choice(ESTATES)}{zh_number(rng.randint(1, 30))}号楼{zh_number(rng.randint(1, 6))}单元"
                f"{_room(rng, True)}")
    return f"{rng.randint(1, 30)}栋{rng.randint(1, 6)}单元{_room(rng, False)}室"
