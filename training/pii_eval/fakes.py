"""Fake private values in the formats people really type, for planting in test data.

The PII evaluation set (``training.pii_eval.evalset``), the data benchmark and the scrubber's property
tests all draw from these: CN mobiles (spaced, dashed, with +86/0086), landlines, international
numbers, e-mails, CN resident IDs with a correct (or, on request, wrong) check character, card
numbers that pass (or fail) Luhn in the issuers' lengths and groupings, IPv4 addresses, URLs with
credentials in them, Chinese and English street addresses, passwords, PINs and API tokens. Every
function takes a ``random.Random`` so the callers stay reproducible.

Tested in ``tests/doppel/test_pii.py`` (its values planted in the scrubber's property tests, valid
IBANs, and the evaluation set it fills).
"""

from __future__ import annotations

import random

from doppel.pii.validators import luhn_ok

_CN_PREFIXES = ("130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155", "157",
                "158", "159", "166", "170", "176", "177", "178", "180", "181", "182", "185", "186", "187",
                "188", "189", "191", "195", "198", "199")


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def cn_mobile(rng: random.Random) -> str:
    number = rng.choice(_CN_PREFIXES) + digits(rng, 8)
    style = rng.randrange(10)
    if style == 6:
        return f"0086 {number}"
    if style == 7:
        return f"+86-{number[:3]}-{number[3:7]}-{number[7:]}"
    if style == 1:
        return f"{number[:3]} {number[3:7]} {number[7:]}"
    if style == 2:
        return f"{number[:3]}-{number[3:7]}-{number[7:]}"
    if style == 3:
        return f"+86 {number}"
    if style == 4:
        return f"+86 {number[:3]} {number[3:7]} {number[7:]}"
    if style == 5:
        return f"+86{number}"
    return number


def cn_landline(rng: random.Random) -> str:
    area, length = rng.choice((("010", 8), ("021", 8), ("020", 8), ("0755", 8), ("0571", 8), ("028", 8),
                               ("0731", 8), ("0898", 7)))
    local = str(rng.randint(2, 8)) + digits(rng, length - 1)
    if rng.random() < 0.3 and length == 8:
        return f"{area}-{local[:4]} {local[4:]}"
    return f"{area}-{local}"


def intl_phone(rng: random.Random) -> str:
    area = str(rng.randint(201, 989))
    if area[1] == "9":
        area = area[0] + "5" + area[2]
    line = digits(rng, 4)
    exchange = str(rng.randint(200, 999))
    choices = (
        f"+1 {area}-{exchange}-{line}", f"({area}) {exchange}-{line}", f"{area}.{exchange}.{line}",
        f"{area}-{exchange}-{line}", f"+1 ({area}) {exchange}-{line}", f"1-{area}-{exchange}-{line}",
        f"+44 20 {rng.randint(7000, 8999)} {line}", f"+44 7{digits(rng, 3)} {digits(rng, 6)}",
        f"+49 30 {digits(rng, 7)}", f"+33 6 {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)}",
        f"+81 90-{digits(rng, 4)}-{line}", f"+61 4{digits(rng, 2)} {digits(rng, 3)} {digits(rng, 3)}",
        f"+91 9{digits(rng, 4)} {digits(rng, 5)}", f"+852 {rng.randint(5, 9)}{digits(rng, 3)} {line}",
        f"+65 {rng.randint(8, 9)}{digits(rng, 3)} {line}",
    )
    return rng.choice(choices)


_GIVEN = ("zhang.san", "lisi", "wang_wei", "jane.doe", "mike", "chen.xiaoming", "liu88", "amy.wong", "bob.smith",
          "xiao_hong", "tom_lee", "sarah.k", "dev.team", "hr", "yuki.tanaka", "a.nguyen", "li.na1990")
_DOMAINS = ("qq.com", "163.com", "126.com", "gmail.com", "outlook.com", "foxmail.com", "hotmail.com", "sina.com",
            "company.cn", "example.org", "mail.tsinghua.edu.cn", "bytedance.com", "acme.co.uk", "yahoo.co.jp",
            "proton.me", "icloud.com")


def email(rng: random.Random) -> str:
    local = rng.choice(_GIVEN)
    if rng.random() < 0.25:
        local = digits(rng, rng.randint(6, 10)).lstrip("0") or "10001"
    elif rng.random() < 0.2:
        local += "+" + rng.choice(("work", "news", "shop"))
    elif rng.random() < 0.2:
        local = local.title()
    return f"{local}@{rng.choice(_DOMAINS)}"


_REGIONS = ("110105", "110108", "310104", "310115", "440305", "440106", "510107", "320102", "330106", "420106",
            "610113", "370202", "500103", "430104", "350203", "120101", "210202", "230103", "450103", "530102")


def cn_id_spaced(rng: random.Random) -> str:
    number = cn_id(rng)
    return f"{number[:6]} {number[6:14]} {number[14:]}"


def cn_id(rng: random.Random, *, valid: bool = True) -> str:
    year = rng.randint(1950, 2006)
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    body = f"{rng.choice(_REGIONS)}{year}{month:02d}{day:02d}{digits(rng, 3)}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
    if not valid:
        check = rng.choice([c for c in "0123456789X" if c != check])
    if check == "X" and rng.random() < 0.4:
        check = "x"
    return body + check


def _luhn_complete(prefix: str, length: int, rng: random.Random, *, valid: bool = True) -> str:
    body = prefix + digits(rng, length - len(prefix) - 1)
    for check in "0123456789":
        if luhn_ok(body + check) == valid:
            return body + check
    raise AssertionError("unreachable")


def card(rng: random.Random, *, valid: bool = True) -> str:
    prefix, length = rng.choice((("4", 16), ("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("622202", 16),
                                 ("622848", 19), ("621700", 19), ("6225", 16), ("34", 15), ("37", 15),
                                 ("6011", 16), ("3528", 16), ("623668", 19)))
    number = _luhn_complete(prefix, length, rng, valid=valid)
    style = rng.randrange(4)
    if length == 15 and style:
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    if style == 1:
        return " ".join(number[i:i + 4] for i in range(0, length, 4))
    if style == 2 and length == 16:
        return "-".join(number[i:i + 4] for i in range(0, length, 4))
    return number


def ipv4(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return f"192.168.{rng.randint(0, 5)}.{rng.randint(2, 254)}"
    if kind == 1:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if kind == 2:
        return f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    first = rng.choice((47, 39, 120, 101, 203, 54, 18, 8, 114, 223))
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def token(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def token_url(rng: random.Random) -> str:
    hexa = "0123456789abcdef"
    return rng.choice((
        f"https://api.weather-data.com/v1/forecast?city=beijing&api_key={token(rng, 32, hexa)}",
        f"https://hooks.example.com/services/T0{token(rng, 8)}?token={token(rng, 24)}",
        f"https://pan.baidu.com/s/1{token(rng, 22)}?pwd={token(rng, 4, 'abcdefghijkmnpqrstuvwxyz23456789')}",
        f"https://zoom.us/j/{digits(rng, 10)}?pwd={token(rng, 32)}",
        f"https://git.company.cn/users/sign_in?private_token={token(rng, 20)}",
        f"https://myapp.example.com/reset-password?code={token(rng, 40)}&email=1",
        f"https://s3.amazonaws.com/bucket/report.pdf?X-Amz-Credential=AKIA{token(rng, 16)}"
        f"&X-Amz-Signature={token(rng, 64, hexa)}",
        f"http://{ipv4(rng)}:8080/admin?user=root&password={token(rng, 10)}",
        f"https://deploy:{token(rng, 12)}@git.example.org/team/app.git",
        f"https://www.dropbox.com/s/{token(rng, 15)}/notes.txt?dl=0&access_token={token(rng, 30)}",
        f"https://oauth.example.com/callback?state=xyz&code={token(rng, 26)}",
        f"https://example.feishu.cn/docx/{token(rng, 22)}?sessionid={token(rng, 32)}",
    ))


_ROADS = ("建国", "中山", "人民", "解放", "南京东", "淮海中", "科技园南", "学院", "长江", "朝阳北", "文三", "和平",
          "天府大", "五一", "延安西", "光华", "深南", "珠江", "新华", "青年")
_ROAD_SUFFIX = ("路", "路", "路", "街", "大道", "大街")
_CITIES = ("北京市朝阳区", "上海市浦东新区", "广州市天河区", "深圳市南山区", "杭州市西湖区", "成都市武侯区",
           "武汉市洪山区", "南京市鼓楼区", "", "", "")
_ESTATES = ("阳光花园", "望京小区", "万科城市花园", "翠湖家园", "金色公寓", "碧桂园", "华侨新村", "世纪广场")


def cn_address(rng: random.Random) -> str:
    if rng.random() < 0.25:
        place = f"{rng.choice(_ESTATES)}{rng.randint(1, 30)}{rng.choice(('栋', '号楼', '幢'))}"
    else:
        place = f"{rng.choice(_ROADS)}{rng.choice(_ROAD_SUFFIX)}{rng.randint(1, 999)}号"
    tail = rng.choice(("", "", f"{rng.randint(1, 9)}单元{rng.randint(1, 30)}{rng.randint(1, 4):02d}",
                       f"{rng.randint(1, 30)}楼", f"院{rng.randint(1, 20)}号楼", f"{rng.randint(101, 2504)}室"))
    if "栋" in place or "楼" in place or "幢" in place:
        tail = rng.choice(("", f"{rng.randint(1, 6)}单元{rng.randint(101, 2504)}", f"{rng.randint(101, 2504)}室"))
    return rng.choice(_CITIES) + place + tail


_STREETS = ("Main", "Oak", "Baker", "Maple", "Park", "Elm", "Pine", "Sunset", "Evergreen", "Wallaby",
            "Pennsylvania", "Lexington", "Market", "Mission", "Cedar Hill", "King", "Queen", "High")
_SUFFIXES = ("Street", "St", "Avenue", "Ave", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Drive", "Court", "Way",
             "Terrace", "Place")


def en_address(rng: random.Random) -> str:
    number = str(rng.randint(1, 9999)) + ("B" if rng.random() < 0.05 else "")
    style = rng.randrange(7)
    if style == 6:  # typed in a hurry, all lower case
        name = rng.choice(("main", "oak", "maple", "elm", "park", "baker"))
        return f"{number} {name} {rng.choice(('st', 'street', 'ave', 'rd'))}"
    if style == 0:
        street = f"{rng.choice(('W', 'E', 'N', 'S'))} {rng.randint(1, 99)}{rng.choice(('st', 'nd', 'rd', 'th'))} St"
    else:
        street = f"{rng.choice(_STREETS)} {rng.choice(_SUFFIXES)}"
    unit = rng.choice(("", "", "", f", Apt {rng.randint(1, 30)}{rng.choice('ABCD')}",
                       f", Suite {rng.randint(100, 990)}", f" #{rng.randint(2, 40)}"))
    return f"{number} {street}{unit}"


def secret_value(rng: random.Random) -> str:
    return rng.choice((
        f"{rng.choice(('abc', 'qwe', 'zxc', 'wang', 'li', 'love'))}{digits(rng, rng.randint(3, 6))}",
        digits(rng, rng.randint(6, 8)),
        f"{token(rng, 3, 'ABCDEFGHJKLMNPQRSTUVWXYZ')}{token(rng, 4, 'abcdefghijkmnopqrstuvwxyz')}{digits(rng, 2)}!",
        f"P@ss{digits(rng, 4)}", f"Tr0ub4dor&{rng.randint(1, 9)}", f"hunter{rng.randint(2, 99)}",
        f"{token(rng, 8)}",
    ))


def pin_value(rng: random.Random) -> str:
    return digits(rng, rng.choice((4, 6)))


def api_token(rng: random.Random) -> str:
    return rng.choice((f"sk-proj-{token(rng, 40)}", f"ghp_{token(rng, 36)}",
                       f"AKIA{token(rng, 16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}",
                       f"xoxb-{digits(rng, 11)}-{token(rng, 24)}", f"sk-{token(rng, 48)}"))


# Country -> the BBAN's shape: "a" a capital letter, "9" a digit (ISO 13616 registry).
_IBAN_BBAN = {"DE": "9" * 18, "GB": "aaaa" + "9" * 14, "NL": "aaaa" + "9" * 10, "FR": "9" * 23,
              "ES": "9" * 20, "IT": "a" + "9" * 22, "BE": "9" * 12, "AT": "9" * 16}
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def iban(rng: random.Random, country: str = "", *, spaced: bool | None = None) -> str:
    """An IBAN with correct mod-97 check digits; printed in groups of four or compact."""
    country = country or rng.choice(sorted(_IBAN_BBAN))
    bban = "".join(rng.choice(_UPPER) if c == "a" else rng.choice("0123456789") for c in _IBAN_BBAN[country])
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    number = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    if spaced if spaced is not None else rng.random() < 0.6:
        return " ".join(number[i:i + 4] for i in range(0, len(number), 4))
    return number
