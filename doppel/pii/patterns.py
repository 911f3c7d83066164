"""The patterns of the scrubber's detectors: phone numbers, e-mails, ID, card and IBAN numbers,
IPs, token URLs, street addresses and spoken secrets, and the contexts that rule a match out.

A match is a candidate only: numbers are then validated (``doppel.pii.validators``) and
overlapping candidates merged (``doppel.pii.findings``), so look-alikes such as dates, prices,
versions, timestamps and order numbers are left alone.

Speed: every pattern is compiled once (module constants, immutable), and a text runs only the
detectors whose cheap trigger (a digit, an ``@``, ``://``, a keyword) it contains; most chat
messages have none and cost one regex search.

Tested in ``tests/doppel/test_pii.py`` (what is replaced, what is left alone) and
``tests/doppel/test_pii_spellings.py``.
"""

from __future__ import annotations

import re

# Anything that could start a finding, searched in the lower-cased text. A text without any of
# these is not given to the patterns. The look-ahead lets the regex engine skip other characters.
TRIGGER_FIRST = "0-9@:wps密口提验驗校tkgxae"
TRIGGER_WORDS = (r"[0-9@]|://|www\.|密码|密碼|口令|提取码|验证码|驗證碼|校验码|"
                 r"pass|pwd|pw|pin|token|secret|key|sk-|ghp_|github_pat_|xox[abpr]-|akia|aiza|eyj")
TRIGGER = re.compile(f"(?=[{TRIGGER_FIRST}])(?:{TRIGGER_WORDS})")

_NOT_ALNUM_BEFORE = r"(?<![0-9A-Za-z_])"
_NOT_ALNUM_AFTER = r"(?![0-9A-Za-z_])"

# -- URL ------------------------------------------------------------------------------------------

URL = re.compile(r"(?:(?:https?|ftp)://|www\.)[^\s<>\"'，。！？、；：（）【】《》「」]+", re.IGNORECASE)
URL_TRAILING = ".,;:!?)]}'\""
# Query/fragment keys whose values are credentials or one-time secrets.
URL_SECRET_KEY = re.compile(
    r"[?&#;](?:access_?token|refresh_?token|id_?token|auth(?:_?token)?|token|api_?key|apikey|key|"
    r"secret|client_secret|password|passwd|pwd|pass|sig|signature|session(?:_?id)?|sid|code|ticket|"
    r"jwt|x-amz-signature|x-amz-credential|x-goog-signature|private_token)=[^&#\s]+",
    re.IGNORECASE,
)
URL_USERINFO = re.compile(r"^[a-z]+://[^/@\s:]+:[^/@\s]+@", re.IGNORECASE)

# -- e-mail -------------------------------------------------------------------------------------

EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)

# -- secrets --------------------------------------------------------------------------------------

# "密码是abc123", "wifi密码：xyz", "验证码 384756": after a Chinese keyword the value is the ASCII
# run that follows (a Chinese word after it is talk about the password, not the password).
# Values never contain "<" or ">" nor start with ":" or "=", so a value never runs into a
# placeholder: scrubbing scrubbed text changes nothing.
SECRET_ZH = re.compile(
    r"(?P<kw>(?:wi-?fi|WIFI|登录|登陆|支付|银行卡|开机|锁屏|邮箱|账号|取款)?(?:密码|密碼)|口令|提取码|验证码|驗證碼|校验码|"
    r"PIN码|pin码)"
    r"\s*(?:[:：=]|是|为|為|改成了?|改为|换成了?|发你|给你)?\s*"
    r"(?P<value>(?![:=])[!-;=?-~]{3,64})"
)
# "password: x" accepts any value; "password is x" / "pin 4821" only secret-looking ones.
SECRET_EN = re.compile(
    r"(?<![A-Za-z])(?P<kw>(?:wi-?fi |e-?mail |admin |root |account |login )?"
    r"(?:password|passwd|passcode|pass code|pwd|pw)|"
    r"pin(?: code| number)?|api[ _-]?key|secret(?: key)?|access[ _-]?token|auth[ _-]?token|token)(?![A-Za-z])"
    r"(?:(?P<strong>\s*(?:(?:is|was)\s*)?[:=：]\s*)|(?P<weak>\s+(?:(?:is|was)\s+(?:now\s+|still\s+)?)?))"
    r"(?P<value>(?![:=])[!-;=?-~]{3,64})",
    re.IGNORECASE,
)
SECRET_STOPWORDS = frozenset(
    "wrong incorrect correct right required expired invalid valid the a an same changed reset what "
    "forgotten forgot missing empty blank too not still here there below above attached sent "
    "protected strong weak ok okay fine none null n/a".split()
)
NUMERIC_SECRET = re.compile(r"pin|pass|pwd|码|碼|口令", re.IGNORECASE)
# Credentials recognisable by their own shape, wherever they appear.
TOKEN_SHAPES = re.compile(
    _NOT_ALNUM_BEFORE
    + r"(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|ghp_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|"
    r"xox[abpr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|"
    r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
)

# -- numbers --------------------------------------------------------------------------------------

ID = re.compile(
    _NOT_ALNUM_BEFORE
    + r"([1-9]\d{5})[ -]?((?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))[ -]?(\d{3}[0-9Xx])"
    + _NOT_ALNUM_AFTER
)

# 13-19 digits, contiguous or in groups separated by single spaces or dashes.
CARD = re.compile(_NOT_ALNUM_BEFORE + r"\d{2,19}(?:[ -]\d{2,8})*" + _NOT_ALNUM_AFTER)
# A Luhn-valid number right after these words is an order or tracking number, not a card.
CARD_NOT_AFTER = re.compile(
    r"(?:订单|单号|运单|快递|物流|流水|交易号|编号|工单|发票|"
    r"(?:order|tracking|invoice|ref|reference|confirmation|booking)(?:\s*(?:number|num|no\.?|id|code))?|\bno\.)"
    r"\s*[:：#]?\s*$",
    re.IGNORECASE,
)

# Country code, two check digits, then the account in groups of four or run together (ISO 13616).
IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?(?![A-Za-z0-9])")

PHONE_PATTERNS = (
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
    re.compile(_NOT_ALNUM_BEFORE + r"(?<!\d[ -])(?:[(（]0\d{2,4}[)）]\s?|0\d{2,4}[ -])\d{3,4}[ -]?\d{3,4}"
               + _NOT_ALNUM_AFTER),
)
# A number labelled as a meeting's is no phone, whatever its shape ("zoom id 912 345 6789").
PHONE_NOT_AFTER = re.compile(r"(?:会议号|会议|會議|meeting(?: id| number| no\.?| code)?|zoom(?: id)?|webinar(?: id)?)"
                             r"\s*[:：#]?\s*$", re.IGNORECASE)

IPV4 = re.compile(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d)"
)
# Written so that it does not link ("10[.]0[.]0[.]1"), the way security people share addresses.
IPV4_DEFANGED = re.compile(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\[\.\]|\(\.\)|\[dot\]|\(dot\))){3}"
    r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d)", re.IGNORECASE)
IP_NOT_AFTER = re.compile(r"(?<![A-Za-z])(?:v|ver\.?|version|build|release|update(?:d)? to)\s*[:：]?\s*$|"
                          r"(?:版本号?|升级到?|更新到?)\s*[:：]?\s*$",
                          re.IGNORECASE)

# -- addresses ------------------------------------------------------------------------------------

_EN_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|"
    r"Parkway|Pkwy|Highway|Hwy|Square|Sq|Circle|Cir|Crescent|Close|Row|Alley|Trail|Loop|Plaza)"
)
# Lower case ("12 main st", "1428 w belmont ave apt 3b", "350 w 42nd st") only with one name word
# and a common suffix: "5 blocks down the road" must not read as an address.
EN_ADDRESS_LOWER = re.compile(
    r"(?<![\w#])\d{1,5}[A-Za-z]? (?:(?:n|s|e|w|north|south|east|west)\.? )?(?:[a-z]{3,12}|\d{1,3}(?:st|nd|rd|th)) "
    r"(?:street|st|avenue|ave|road|rd|blvd|drive|dr|lane|ln)\b\.?"
    r"(?:[,，]? (?:apt|unit|suite|ste|#) ?#?[a-z0-9-]{1,6}\b)?"
)
EN_ADDRESS = re.compile(
    r"(?<![\w#])\d{1,5}[A-Za-z]?\s+(?:(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?\s+)?"
    r"(?:(?:[A-Z][A-Za-z'-]+|\d{1,3}(?:st|nd|rd|th))\s+){1,3}" + _EN_STREET_SUFFIX + r"\b\.?(?:\s+(?:NW|NE|SW|SE)\b)?"
    r"(?:[,，]?\s*(?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|Rm|#)\.?\s*#?[A-Za-z0-9-]{1,6})?"
)
# Typed in capitals ("77 N HALSTED ST"): stricter than the mixed-case form, because people who
# shout write whole sentences in capitals: one or two name words, none of them a little word
# ("5 BLOCKS DOWN THE ROAD" is not an address), and no "WAY" ("2 DAYS WAY TOO LONG").
CAPS_RUN = re.compile(r"[A-Z]{2} ")
EN_ADDRESS_CAPS = re.compile(
    r"(?<![\w#])\d{1,5}[A-Z]?\s+(?:(?:N|S|E|W|NE|NW|SE|SW|NORTH|SOUTH|EAST|WEST)\.?\s+)?"
    r"(?:(?!(?:THE|A|AN|MY|YOUR|OUR|THIS|THAT|DOWN|UP|TO|OF|MORE|BLOCKS|MILES|MINUTES|HOURS)\b)"
    r"(?:[A-Z][A-Z'-]+|\d{1,3}(?:ST|ND|RD|TH))\s+){1,2}"
    + _EN_STREET_SUFFIX.upper().replace("|WAY|", "|") + r"\b\.?(?:\s+(?:NW|NE|SW|SE)\b)?"
    r"(?:[,，]?\s*(?:APT|APARTMENT|SUITE|STE|UNIT|FLAT|#)\.?\s*#?[A-Z0-9-]{1,6})?"
)
# Characters that begin or glue a sentence but are (almost) never part of a place name; a name
# stops at them so "我住在建国路88号" yields the address, not "我住在建国路88号" whole.
_CN_STOP = "我你他她它们在住到是寄送于的了吗呢吧啊哦就也还要去来这那条个跟从往向给把被让请址："
_CN_NAME = rf"(?:(?![{_CN_STOP}])[\u4e00-\u9fff]){{1,8}}?"
_CN_NUM = r"(?:\d{1,5}|[一二三四五六七八九十百零〇两]{1,4})"
CN_ADDRESS = re.compile(
    rf"(?:{_CN_NAME}(?:省|自治区))?(?:{_CN_NAME}市)?(?:{_CN_NAME}(?:区|县|镇|乡))?"
    rf"(?:{_CN_NAME}(?:街道))?"
    rf"(?:"
    # road + door number: 建国路88号, 南京东路100-2号, 中山大道西1号
    rf"{_CN_NAME}(?:路|街|大街|大道|巷|弄|胡同|里)(?:[东西南北中][段]?|{_CN_NUM}段)?\s?\d{{1,5}}(?:-\d{{1,5}})?\s?[号號]"
    rf"|"
    # estate + building: 阳光花园3栋, 望京小区5号楼
    rf"{_CN_NAME}(?:小区|园|公寓|新村|苑|城|府|庭|湾|广场|大厦|中心)\s?{_CN_NUM}\s?(?:号楼|栋|幢|座|期)"
    rf"|"
    # building + unit or building + room, without a name: 3栋2单元501室, 12号楼1203室
    rf"\d{{1,3}}\s?(?:栋|幢|号楼|座)\s?(?:\d{{1,2}}\s?单元|\d{{3,4}}\s?室)"
    rf")"
    # then building, unit, floor and room, possibly inside a named estate or tower
    rf"(?:{_CN_NAME}(?:园|大厦|中心|广场|小区|大楼|公寓))?"
    rf"(?:院|[A-Z]\s?(?:座|栋|幢)|\s?{_CN_NUM}\s?(?:号楼|栋|幢|座|单元|层|楼|室|号)|\d{{3,4}}室?(?![\d年月日号点时分:：.%元块])"
    rf"|(?<=单元)[零〇一二三四五六七八九十百千两]{{2,7}}室?){{0,4}}"
)
CN_ADDRESS_HINT = re.compile(r"[路街道巷弄同里区园寓村苑城府庭湾场厦心栋幢][^\n]{0,12}?[\d一二三四五六七八九十]")
