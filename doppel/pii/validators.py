"""The checks that tell a real number from a look-alike: Luhn and issuer prefixes for cards, the
country length and mod-97 check for IBANs, region, birth date and the ISO 7064 checksum for CN
resident IDs (and region and birth date for the old 15-digit ones), the check digits of Hong Kong
and Taiwan IDs, the issued ranges of US social security numbers and of North American numbers.

Precision matters as much as recall (an order number scrubbed as a card teaches the model
nonsense), so the scrubber validates numbers, not just their shape.

Tested in ``tests/doppel/test_pii.py`` (Luhn, IBAN, CN IDs) and ``tests/doppel/test_pii_spellings.py``
(HK/TW IDs, SSNs, through the spellings).
"""

from __future__ import annotations

import re
from types import MappingProxyType

_ID_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82 91".split()
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# Issuer prefixes and the lengths each issues (Visa, Mastercard, Amex, UnionPay, Discover, JCB,
# Diners, CN domestic debit): an 18-digit Luhn-valid number starting with 4 is not a Visa card.
_CARD_ISSUERS = (
    (re.compile(r"4"), frozenset((13, 16, 19))),
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), frozenset((16,))),
    (re.compile(r"3[47]"), frozenset((15,))),
    (re.compile(r"62|6011|64[4-9]|65|35|9\d"), frozenset(range(16, 20))),
    (re.compile(r"30[0-5]|36|38"), frozenset(range(14, 20))),
)

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


def card_issued(digits: str) -> bool:
    """Whether some issuer gives out card numbers with this prefix and this length."""
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
    year, month, day = int(number[6:10]), int(number[10:12]), int(number[12:14])
    if not (1800 <= year < 2100 and 1 <= month <= 12 and 1 <= day) or \
            day > (29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31):
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def cn_id15_ok(number: str) -> bool:
    """A first-generation (15-digit) CN resident ID: known province and a real YYMMDD birth date.
    It has no check digit, so the scrubber takes one only after a context word."""
    if len(number) != 15 or not number.isdigit() or number[:2] not in _ID_PROVINCES:
        return False
    month, day = int(number[8:10]), int(number[10:12])
    return 1 <= month <= 12 and 1 <= day <= (29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31)


def hk_id_ok(letters: str, digits: str, check: str) -> bool:
    """A Hong Kong identity card number: one or two letters, six digits, the mod-11 check digit (0-9 or A)."""
    letters = letters.upper().rjust(2)
    if len(letters) != 2 or len(digits) != 6 or not digits.isdigit():
        return False
    values = [36 if c == " " else ord(c) - 55 for c in letters] + [int(c) for c in digits]
    remainder = sum(v * w for v, w in zip(values, range(9, 1, -1), strict=True)) % 11
    return check.upper() == ("0" if remainder == 0 else "A" if remainder == 1 else str(11 - remainder))


_TW_LETTERS = MappingProxyType(dict(zip("ABCDEFGHJKLMNPQRSTUVXYWZIO", range(10, 36), strict=True)))


def tw_id_ok(number: str) -> bool:
    """A Taiwan national ID: a letter (its two-digit code weighted 1 and 9), nine digits weighted 8..1, 1; mod 10."""
    number = number.upper()
    if len(number) != 10 or number[0] not in _TW_LETTERS or not number[1:].isdigit() or number[1] not in "1289":
        return False
    code = _TW_LETTERS[number[0]]
    weights = (8, 7, 6, 5, 4, 3, 2, 1, 1)
    return (code // 10 + code % 10 * 9 + sum(int(d) * w for d, w in zip(number[1:], weights, strict=True))) % 10 == 0


def ssn_ok(digits: str) -> bool:
    """A US social security number in the issued ranges: area 001-899 but 666, group and serial not zero."""
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = int(digits[:3]), int(digits[3:5]), int(digits[5:])
    return 0 < area < 900 and area != 666 and group > 0 and serial > 0


def nanp_ok(digits: str) -> bool:
    """A North American number: area code and exchange both start with 2-9 (with or without the leading 1)."""
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return len(digits) == 10 and digits.isdigit() and digits[0] >= "2" and digits[3] >= "2"
