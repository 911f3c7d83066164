"""The private-data scrubber: find phone numbers, e-mails, ID, card and bank account (IBAN)
numbers, IPs, token URLs, street addresses and spoken secrets, and replace them with typed
placeholders.

Replace, don't drop: the clone should learn that the owner *gives* a phone number at this point
of a conversation, not which one. Placeholders are ``<PHONE>``, ``<EMAIL>``, ``<ID>``, ``<CARD>``,
``<IBAN>``, ``<IP>``, ``<URL>``, ``<ADDRESS>`` and ``<SECRET>``.

Numbering, within one sample (a list of texts scrubbed together, ``Scrubber.scrub_texts``): when
a type occurs with a single distinct value the placeholder is bare (``<PHONE>``, however often
the value repeats); when several distinct values of a type occur they become ``<PHONE_1>``,
``<PHONE_2>``, ... in order of first appearance, and the same value always gets the same number.
So "call 138... or 139..., 138... is better" keeps its meaning without keeping the numbers.

Precision matters as much as recall (an order number scrubbed as a card teaches the model
nonsense), so numbers are validated, not just shaped: CN resident IDs by region, birth date and
the ISO 7064 checksum, cards by issuer prefix and Luhn, IBANs by country length and the
mod-97 check, IPv4 by octet range; look-alikes such as
dates, prices, versions, timestamps and order numbers are left alone.

Speed: every pattern is compiled once (module constants, immutable), and a text runs only the
detectors whose cheap trigger (a digit, an ``@``, ``://``, a keyword) it contains; most chat
messages have none and cost one regex search. Imports only the standard library, so the worker
can redact generated replies with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType

TYPES = ("PHONE", "EMAIL", "ID", "CARD", "IBAN", "IP", "URL", "ADDRESS", "SECRET")

# Matches every placeholder this module writes, so callers (and tests) can recognise them.
PLACEHOLDER = re.compile(r"<(?:PHONE|EMAIL|ID|CARD|IBAN|IP|URL|ADDRESS|SECRET)(?:_\d+)?>")

# Anything that could start a finding. A text without any of these is returned untouched.
_TRIGGER = re.compile(
    r"[0-9@]|://|www\.|密码|密碼|口令|提取码|验证码|驗證碼|校验码|"
    r"pass|pwd|pw|pin|token|secret|key|sk-|ghp_|github_pat_|xox[abpr]-|AKIA|AIza|eyJ",
    re.IGNORECASE,
)

_NOT_ALNUM_BEFORE = r"(?<![0-9A-Za-z_])"
_NOT_ALNUM_AFTER = r"(?![0-9A-Za-z_])"

# -- URL ------------------------------------------------------------------------------------------

_URL = re.compile(r"(?:(?:https?|ftp)://|www\.)[^\s<>\"'，。！？、；：（）【】《》「」]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\""
# Query/fragment keys whose values are credentials or one-time secrets.
_URL_SECRET_KEY = re.compile(
    r"[?&#;](?:access_?token|refresh_?token|id_?token|auth(?:_?token)?|token|api_?key|apikey|key|"
    r"secret|client_secret|password|passwd|pwd|pass|sig|signature|session(?:_?id)?|sid|code|ticket|"
    r"jwt|x-amz-signature|x-amz-credential|x-goog-signature|private_token)=[^&#\s]+",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"^[a-z]+://[^/@\s:]+:[^/@\s]+@", re.IGNORECASE)

# -- e-mail -------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)

# -- secrets --------------------------------------------------------------------------------------

# "密码是abc123", "wifi密码：xyz", "验证码 384756": after a Chinese keyword the value is the ASCII
# run that follows (a Chinese word after it is talk about the password, not the password).
# Values never contain "<" or ">" nor start with ":" or "=", so a value never runs into a
# placeholder: scrubbing scrubbed text changes nothing.
_SECRET_ZH = re.compile(
    r"(?P<kw>(?:wi-?fi|WIFI|登录|登陆|支付|银行卡|开机|锁屏|邮箱|账号|取款)?(?:密码|密碼)|口令|提取码|验证码|驗證碼|校验码|"
    r"PIN码|pin码)"
    r"\s*(?:[:：=]|是|为|為|改成了?|改为|换成了?|发你|给你)?\s*"
    r"(?P<value>(?![:=])[!-;=?-~]{3,64})"
)
# "password: x" accepts any value; "password is x" / "pin 4821" only secret-looking ones.
_SECRET_EN = re.compile(
    r"(?<![A-Za-z])(?P<kw>(?:wi-?fi |e-?mail |admin |root |account |login )?"
    r"(?:password|passwd|passcode|pass code|pwd|pw)|"
    r"pin(?: code| number)?|api[ _-]?key|secret(?: key)?|access[ _-]?token|auth[ _-]?token|token)(?![A-Za-z])"
    r"(?:(?P<strong>\s*(?:(?:is|was)\s*)?[:=：]\s*)|(?P<weak>\s+(?:(?:is|was)\s+(?:now\s+|still\s+)?)?))"
    r"(?P<value>(?![:=])[!-;=?-~]{3,64})",
    re.IGNORECASE,
)
_SECRET_STOPWORDS = frozenset(
    "wrong incorrect correct right required expired invalid valid the a an same changed reset what "
    "forgotten forgot missing empty blank too not still here there below above attached sent "
    "protected strong weak ok okay fine none null n/a".split()
)
_NUMERIC_SECRET = re.compile(r"pin|pass|pwd|码|碼|口令", re.IGNORECASE)
# Credentials recognisable by their own shape, wherever they appear.
_TOKEN_SHAPES = re.compile(
    _NOT_ALNUM_BEFORE
    + r"(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|ghp_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|"
    r"xox[abpr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|"
    r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
)

# -- numbers --------------------------------------------------------------------------------------

_ID = re.compile(
    _NOT_ALNUM_BEFORE
    + r"([1-9]\d{5})[ -]?((?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))[ -]?(\d{3}[0-9Xx])"
    + _NOT_ALNUM_AFTER
)
_ID_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82 91".split()
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# 13-19 digits, contiguous or in groups separated by single spaces or dashes.
_CARD = re.compile(_NOT_ALNUM_BEFORE + r"\d{2,19}(?:[ -]\d{2,8})*" + _NOT_ALNUM_AFTER)
# Issuer prefixes and the lengths each issues (Visa, Mastercard, Amex, UnionPay, Discover, JCB,
# Diners, CN domestic debit): an 18-digit Luhn-valid number starting with 4 is not a Visa card.
_CARD_ISSUERS = (
    (re.compile(r"4"), frozenset((13, 16, 19))),
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), frozenset((16,))),
    (re.compile(r"3[47]"), frozenset((15,))),
    (re.compile(r"62|6011|64[4-9]|65|35|9\d"), frozenset(range(16, 20))),
    (re.compile(r"30[0-5]|36|38"), frozenset(range(14, 20))),
)
# A Luhn-valid number right after these words is an order or tracking number, not a card.
_CARD_NOT_AFTER = re.compile(
    r"(?:订单|单号|运单|快递|物流|流水|交易号|编号|工单|发票|"
    r"(?:order|tracking|invoice|ref|reference|confirmation|booking)(?:\s*(?:number|num|no\.?|id|code))?|\bno\.)"
    r"\s*[:：#]?\s*$",
    re.IGNORECASE,
)

# Country code, two check digits, then the account in groups of four or run together (ISO 13616).
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?(?![A-Za-z0-9])")
# IBAN length by country (the SWIFT IBAN registry): a shape of the right length is checked by mod 97.
_IBAN_LENGTHS = MappingProxyType({
    **dict.fromkeys(("NO",), 15), **dict.fromkeys(("BE",), 16),
    **dict.fromkeys(("DK", "FI", "FO", "GL", "NL", "SD"), 18), **dict.fromkeys(("MK", "SI"), 19),
    **dict.fromkeys(("AT", "BA", "EE", "KZ", "LT", "LU", "XK"), 20), **dict.fromkeys(("CH", "HR", "LI", "LV"), 21),
    **dict.fromkeys(("BG", "BH", "CR", "DE", "GB", "GE", "IE", "ME", "RS", "VA"), 22),
    **dict.fromkeys(("AE", "GI", "IL", "IQ", "SO", "TL"), 23),
    **dict.fromkeys(("AD", "CZ", "ES", "MD", "PK", "RO", "SA", "SE", "SK", "TN", "VG"), 24),
    **dict.fromkeys(("LY", "PT", "ST"), 25), **dict.fromkeys(("IS", "TR"), 26),
    **dict.fromkeys(("BI", "DJ", "FR", "GR", "IT", "MC", "MR", "SM"), 27),
    **dict.fromkeys(("AL", "AZ", "CY", "DO", "GT", "HU", "LB", "NI", "PL", "SV"), 28),
    **dict.fromkeys(("BR", "EG", "PS", "QA", "UA"), 29), **dict.fromkeys(("BY", "JO", "KW", "MU"), 30),
    **dict.fromkeys(("MT", "SC"), 31), **dict.fromkeys(("LC",), 32), **dict.fromkeys(("RU",), 33),
})

_PHONE_PATTERNS = (
    # CN mobile, optionally with +86 / 0086 / 86, spaced 3-4-4 or dashed.
    re.compile(_NOT_ALNUM_BEFORE + r"(?:(?:\+|00)?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}" + _NOT_ALNUM_AFTER),
    # International with a + country code: +44 20 7946 0958, +1 (415) 555-0132, +49-30-1234567.
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,5}(?!\d)"),
    # North American with separators: (415) 555-0132, 415-555-0132, 415.555.0132, 1-415-555-0132.
    # This and the next must not start inside a longer run of digit groups (a mistyped card).
    re.compile(_NOT_ALNUM_BEFORE + r"(?<!\d[ .-])(?:1[ .-])?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])\d{3}[ .-]\d{4}"
               + _NOT_ALNUM_AFTER),
    # National numbers with a trunk 0: 010-12345678, (010)65529988, 0755 8888 6666, 020 7946 0958,
    # 07700 900123, 0412 345 678. The area code must be set off, or dates and amounts would match.
    re.compile(_NOT_ALNUM_BEFORE + r"(?<!\d[ -])(?:\(0\d{2,4}\)\s?|0\d{2,4}[ -])\d{3,4}[ -]?\d{3,4}"
               + _NOT_ALNUM_AFTER),
)

_IPV4 = re.compile(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d)"
)
_IP_NOT_AFTER = re.compile(r"(?<![A-Za-z])(?:v|ver\.?|version|build|release|update(?:d)? to)\s*[:：]?\s*$|"
                           r"(?:版本号?|升级到?|更新到?)\s*[:：]?\s*$",
                           re.IGNORECASE)

# -- addresses ------------------------------------------------------------------------------------

_EN_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|"
    r"Parkway|Pkwy|Highway|Hwy|Square|Sq|Circle|Cir|Crescent|Close|Row|Alley|Trail|Loop|Plaza)"
)
# Lower case ("12 main st", "1428 w belmont ave apt 3b", "350 w 42nd st") only with one name word
# and a common suffix: "5 blocks down the road" must not read as an address.
_EN_ADDRESS_LOWER = re.compile(
    r"(?<![\w#])\d{1,5}[A-Za-z]? (?:(?:n|s|e|w|north|south|east|west)\.? )?(?:[a-z]{3,12}|\d{1,3}(?:st|nd|rd|th)) "
    r"(?:street|st|avenue|ave|road|rd|blvd|drive|dr|lane|ln)\b\.?(?:,? (?:apt|unit|suite|ste|#) ?#?[a-z0-9-]{1,6}\b)?"
)
_EN_ADDRESS = re.compile(
    r"(?<![\w#])\d{1,5}[A-Za-z]?\s+(?:(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?\s+)?"
    r"(?:(?:[A-Z][A-Za-z'-]+|\d{1,3}(?:st|nd|rd|th))\s+){1,3}" + _EN_STREET_SUFFIX + r"\b\.?(?:\s+(?:NW|NE|SW|SE)\b)?"
    r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|Rm|#)\.?\s*#?[A-Za-z0-9-]{1,6})?"
)
# Typed in capitals ("77 N HALSTED ST"): stricter than the mixed-case form, because people who
# shout write whole sentences in capitals: one or two name words, none of them a little word
# ("5 BLOCKS DOWN THE ROAD" is not an address), and no "WAY" ("2 DAYS WAY TOO LONG").
_CAPS_RUN = re.compile(r"[A-Z]{2} ")
_EN_ADDRESS_CAPS = re.compile(
    r"(?<![\w#])\d{1,5}[A-Z]?\s+(?:(?:N|S|E|W|NE|NW|SE|SW|NORTH|SOUTH|EAST|WEST)\.?\s+)?"
    r"(?:(?!(?:THE|A|AN|MY|YOUR|OUR|THIS|THAT|DOWN|UP|TO|OF|MORE|BLOCKS|MILES|MINUTES|HOURS)\b)"
    r"(?:[A-Z][A-Z'-]+|\d{1,3}(?:ST|ND|RD|TH))\s+){1,2}"
    + _EN_STREET_SUFFIX.upper().replace("|WAY|", "|") + r"\b\.?(?:\s+(?:NW|NE|SW|SE)\b)?"
    r"(?:,?\s*(?:APT|APARTMENT|SUITE|STE|UNIT|FLAT|#)\.?\s*#?[A-Z0-9-]{1,6})?"
)
# Characters that begin or glue a sentence but are (almost) never part of a place name; a name
# stops at them so "我住在建国路88号" yields the address, not "我住在建国路88号" whole.
_CN_STOP = "我你他她它们在住到是寄送于的了吗呢吧啊哦就也还要去来这那条个跟从往向给把被让请址："
_CN_NAME = rf"(?:(?![{_CN_STOP}])[\u4e00-\u9fff]){{1,8}}?"
_CN_NUM = r"(?:\d{1,5}|[一二三四五六七八九十百零〇两]{1,4})"
_CN_ADDRESS = re.compile(
    rf"(?:{_CN_NAME}(?:省|自治区))?(?:{_CN_NAME}市)?(?:{_CN_NAME}(?:区|县|镇|乡))?"
    rf"(?:{_CN_NAME}(?:街道))?"
    rf"(?:"
    # road + door number: 建国路88号, 南京东路100-2号, 中山大道西1号
    rf"{_CN_NAME}(?:路|街|大街|大道|巷|弄|胡同|里)(?:[东西南北中][段]?|{_CN_NUM}段)?\s?\d{{1,5}}(?:-\d{{1,5}})?\s?[号號]"
    rf"|"
    # estate + building: 阳光花园3栋, 望京小区5号楼
    rf"{_CN_NAME}(?:小区|园|公寓|新村|苑|城|府|庭|湾|广场|大厦|中心)\s?{_CN_NUM}\s?(?:号楼|栋|幢|座|期)"
    rf")"
    # then building, unit, floor and room, possibly inside a named estate or tower
    rf"(?:{_CN_NAME}(?:园|大厦|中心|广场|小区|大楼|公寓))?"
    rf"(?:院|[A-Z]\s?(?:座|栋|幢)|\s?{_CN_NUM}\s?(?:号楼|栋|幢|座|单元|层|楼|室|号)|\d{{3,4}}室?(?![\d年月日号点时分:：.%元块])){{0,4}}"
)
_CN_ADDRESS_HINT = re.compile(r"[路街道巷弄同里区园寓村苑城府庭湾场厦心][^\n]{0,12}?[\d一二三四五六七八九十]")

# On a tie between overlapping candidates, the more specific type names the finding.
_PRIORITY = MappingProxyType({name: rank for rank, name in
                              enumerate(("URL", "EMAIL", "SECRET", "ID", "IBAN", "CARD", "PHONE", "IP", "ADDRESS"))})


@dataclass(frozen=True)
class Finding:
    """One private value found in a text: ``text[start:end] == value``."""

    type: str
    start: int
    end: int
    value: str

    def key(self) -> tuple[str, str]:
        """What counts as 'the same value' for numbering: digits only for numbers, case-folded
        e-mails, so '138 1234 5678' and '13812345678' share a placeholder."""
        if self.type in ("PHONE", "ID", "CARD"):
            return self.type, re.sub(r"[^0-9Xx]", "", self.value).upper()
        if self.type == "EMAIL":
            return self.type, self.value.casefold()
        return self.type, self.value


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _issued(digits: str) -> bool:
    return any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _CARD_ISSUERS)


def iban_ok(number: str) -> bool:
    """An IBAN without spaces: the country's length and the ISO 7064 mod-97 check."""
    number = number.upper()
    if _IBAN_LENGTHS.get(number[:2]) != len(number) or not number.isalnum() or not number[2:4].isdigit():
        return False
    return int("".join(str(int(c, 36)) for c in number[4:] + number[:4])) % 97 == 1


def cn_id_ok(number: str) -> bool:
    """An 18-character CN resident ID: known province, real date, ISO 7064 MOD 11-2 checksum."""
    if len(number) != 18 or number[:2] not in _ID_PROVINCES or not number[:17].isdigit():
        return False
    month, day = int(number[10:12]), int(number[12:14])
    if day > (29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31):
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


class Scrubber:
    """Finds private values and replaces them with typed placeholders.

    ``types`` limits what is looked for (default: all of ``TYPES``). Stateless and thread-safe:
    one instance serves a whole build or the worker's output redaction.
    """

    def __init__(self, types: Iterable[str] = TYPES):
        self.types = frozenset(types)
        unknown = self.types - set(TYPES)
        if unknown:
            raise ValueError(f"unknown PII types {sorted(unknown)}; known: {', '.join(TYPES)}")

    # -- finding ----------------------------------------------------------------------------------

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings in ``text``, by position (overlaps merged: ``_resolve``)."""
        if not text or _TRIGGER.search(text) is None:
            return []
        candidates: list[Finding] = []
        has_digit = any(c.isdigit() for c in text)
        wanted = self.types
        if "URL" in wanted and ("://" in text or "www." in text.lower()):
            candidates += self._urls(text)
        if "EMAIL" in wanted and "@" in text:
            candidates += [Finding("EMAIL", m.start(), m.end(), m.group()) for m in _EMAIL.finditer(text)]
        if "SECRET" in wanted:
            candidates += self._secrets(text)
        if has_digit:
            if "ID" in wanted:
                candidates += self._ids(text)
            if "CARD" in wanted:
                candidates += self._cards(text)
            if "IBAN" in wanted:
                candidates += self._ibans(text)
            if "PHONE" in wanted:
                candidates += self._phones(text)
            if "IP" in wanted and "." in text:
                candidates += self._ips(text)
            if "ADDRESS" in wanted:
                candidates += self._addresses(text)
        if not candidates:
            return []
        return _resolve(text, candidates)

    def _urls(self, text: str) -> list[Finding]:
        found = []
        for match in _URL.finditer(text):
            url = match.group().rstrip(_URL_TRAILING)
            if _URL_SECRET_KEY.search(url) or _URL_USERINFO.match(url):
                found.append(Finding("URL", match.start(), match.start() + len(url), url))
        return found

    def _secrets(self, text: str) -> list[Finding]:
        found = [Finding("SECRET", m.start(), m.end(), m.group()) for m in _TOKEN_SHAPES.finditer(text)]
        for pattern in (_SECRET_ZH, _SECRET_EN):
            # A rejected match ("PIN PIN") must not hide a keyword inside it ("PIN token=x"):
            # search again from just after where it started, not from where it ended.
            position = 0
            while match := pattern.search(text, position):
                # "!" and "?" stay: password rules make them common at the end of a secret.
                value = match.group("value").rstrip(".,;:)]}'\"")
                weak = pattern is _SECRET_EN and match.group("weak") is not None
                if len(value) < 3 or value.lower() in _SECRET_STOPWORDS or \
                        (weak and not _looks_secret(value, match.group("kw"))):
                    position = match.start() + 1
                    continue
                start = match.start("value")
                found.append(Finding("SECRET", start, start + len(value), value))
                position = match.end()
        return found

    def _ids(self, text: str) -> list[Finding]:
        found = []
        for match in _ID.finditer(text):
            if cn_id_ok("".join(match.groups())):
                found.append(Finding("ID", match.start(), match.end(), match.group()))
        return found

    def _cards(self, text: str) -> list[Finding]:
        found = []
        for match in _CARD.finditer(text):
            groups = [(match.start() + g.start(), match.start() + g.end()) for g in re.finditer(r"\d+", match.group())]
            # A group longer than six digits is a number of its own (card groups are 4-6 long),
            # so "+8613866604876 6236 6866 0487 6475 934" is a phone, then a card.
            segment: list[tuple[int, int]] = []
            for group in [*groups, None]:
                if group is None or group[1] - group[0] > 6:
                    found += self._cards_in(text, segment)
                    if group is not None:
                        found += self._cards_in(text, [group])
                    segment = []
                else:
                    segment.append(group)
        return found

    @staticmethod
    def _cards_in(text: str, groups: list[tuple[int, int]]) -> list[Finding]:
        # From each group, the longest run of groups first, so a card followed by a year
        # ("4111 1111 1111 1111 2025") is still found, and two cards in a row are two.
        found, first = [], 0
        while first < len(groups):
            start = groups[first][0]
            for last in range(len(groups), first, -1):
                digits = "".join(text[s:e] for s, e in groups[first:last])
                if not 13 <= len(digits) <= 19 or not (_issued(digits) and luhn_ok(digits)):
                    continue
                # Shaped like a resident ID with a typo, or an order number by its label: no card.
                if not (len(digits) == 18 and _ID.fullmatch(digits)) and \
                        not _CARD_NOT_AFTER.search(text[max(0, start - 16):start]):
                    found.append(Finding("CARD", start, groups[last - 1][1], text[start:groups[last - 1][1]]))
                first = last - 1
                break
            first += 1
        return found

    @staticmethod
    def _ibans(text: str) -> list[Finding]:
        found = []
        position = 0
        while match := _IBAN.search(text, position):
            # The last groups may be the next words ("... 3201 pls", or a second IBAN): drop
            # groups from the end until what is left is an IBAN, and look again right after it.
            pieces = match.group().split(" ")
            position = match.start() + 1
            while pieces:
                value = " ".join(pieces)
                if iban_ok(value.replace(" ", "")):
                    found.append(Finding("IBAN", match.start(), match.start() + len(value), value))
                    position = match.start() + len(value)
                    break
                pieces.pop()
        return found

    def _phones(self, text: str) -> list[Finding]:
        found = []
        for pattern in _PHONE_PATTERNS:
            for match in pattern.finditer(text):
                digits = sum(c.isdigit() for c in match.group())
                if 7 <= digits <= 15:
                    found.append(Finding("PHONE", match.start(), match.end(), match.group()))
        return found

    def _ips(self, text: str) -> list[Finding]:
        found = []
        for match in _IPV4.finditer(text):
            if not _IP_NOT_AFTER.search(text[max(0, match.start() - 16):match.start()]):
                found.append(Finding("IP", match.start(), match.end(), match.group()))
        return found

    def _addresses(self, text: str) -> list[Finding]:
        found = [Finding("ADDRESS", m.start(), m.end(), m.group())
                 for pattern in (_EN_ADDRESS, _EN_ADDRESS_LOWER) for m in pattern.finditer(text)]
        if _CAPS_RUN.search(text):
            found += [Finding("ADDRESS", m.start(), m.end(), m.group()) for m in _EN_ADDRESS_CAPS.finditer(text)]
        if _CN_ADDRESS_HINT.search(text):
            for match in _CN_ADDRESS.finditer(text):
                value = match.group().rstrip()
                found.append(Finding("ADDRESS", match.start(), match.start() + len(value), value))
        return found

    # -- replacing --------------------------------------------------------------------------------

    def scrub(self, text: str) -> tuple[str, list[Finding]]:
        """``text`` with every finding replaced, numbered within this text alone."""
        texts, findings = self.scrub_texts([text])
        return texts[0], findings[0]

    def scrub_texts(self, texts: Sequence[str]) -> tuple[list[str], list[list[Finding]]]:
        """Scrub the texts of one sample together, so a value gets the same placeholder everywhere."""
        findings = [self.find(text) for text in texts]
        return render(texts, findings), findings


def render(texts: Sequence[str], findings: Sequence[Sequence[Finding]]) -> list[str]:
    """Replace ``findings[i]`` in ``texts[i]`` with placeholders numbered across all the texts.

    Lets a caller find once per message and render once per sample that contains it.
    """
    distinct: dict[str, list[tuple[str, str]]] = {}
    for finding in (f for fs in findings for f in fs):
        values = distinct.setdefault(finding.type, [])
        if finding.key() not in values:
            values.append(finding.key())
    out = []
    for text, found in zip(texts, findings, strict=True):
        if not found:
            out.append(text)
            continue
        pieces, cursor = [], 0
        for finding in found:
            values = distinct[finding.type]
            label = finding.type if len(values) == 1 else f"{finding.type}_{values.index(finding.key()) + 1}"
            pieces += [text[cursor:finding.start], f"<{label}>"]
            cursor = finding.end
        pieces.append(text[cursor:])
        out.append("".join(pieces))
    return out


def _looks_secret(value: str, keyword: str) -> bool:
    """After a weak separator ('password is X') only a value that is not an ordinary word counts;
    a bare number only after a word that asks for one (PIN, 验证码), not after 'token 2049'."""
    if value.isdigit():
        return len(value) >= 4 and _NUMERIC_SECRET.search(keyword) is not None
    has_digit = any(c.isdigit() for c in value)
    has_symbol = any(not c.isalnum() for c in value)
    mixed_case = any(c.isupper() for c in value[1:]) and any(c.islower() for c in value)
    return has_digit or has_symbol or mixed_case


def _resolve(text: str, candidates: list[Finding]) -> list[Finding]:
    """Overlapping candidates become one finding over their union, so no part of either is left
    in the clear ("password: +86 150..." is one value, not a secret "+86" and a stray number).
    It takes the type of the longest candidate; on a tie the more specific type (a URL over the
    e-mail in it, a spoken secret over the number that is its value, an ID over a card)."""
    candidates.sort(key=lambda f: (f.start, -f.end))
    clusters: list[list] = []
    for candidate in candidates:
        if clusters and candidate.start < clusters[-1][1]:
            clusters[-1][1] = max(clusters[-1][1], candidate.end)
            clusters[-1][2].append(candidate)
        else:
            clusters.append([candidate.start, candidate.end, [candidate]])
    resolved = []
    for start, end, members in clusters:
        best = max(members, key=lambda f: (f.end - f.start, -_PRIORITY[f.type]))
        whole = (best.start, best.end) == (start, end)
        resolved.append(best if whole else Finding(best.type, start, end, text[start:end]))
    return resolved
