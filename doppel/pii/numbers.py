"""Numbers however they are split or spelled: the digit runs of normalized text
(``doppel.pii.normalize``), collapsed and validated.

A run is digits with at most one separator between them (a space, a dot, a slash, a dash, an
underscore, a comma, a middle dot, or up to three spaces and line breaks: a number split across
two burst parts). Its groups are the digits between separators. A sub-run of groups with one kind
of separator that is a valid number by the rules of its kind is a finding:

* a CN mobile (with 86/0086), a CN resident ID (18 characters, mod 11-2) and a card number (issuer
  and Luhn, not after an order label) in any spelling; a North American number (area code and
  exchange 2-9) only spelled out or in 3-3-4 groups;
* written as ASCII groups, a number has to be grouped the way its kind is written (a phone 3-4-4,
  a card in fours), so an IP address, a version or a list of scores does not add up to one;
  spelled out (Chinese numerals, English words, Arabic-Indic or other non-ASCII non-full-width
  digits, one digit at a time) any grouping counts;
* kinds without a check digit only after their context words: a QQ number (QQ, 扣扣, 企鹅), a US
  social security number (SSN, social security; or in its own 3-2-4 dashed shape), the old
  15-digit CN ID (身份证, ID, ...), a numeric code or PIN (验证码, 密码, PIN, code ...).

Plain contiguous ASCII numbers are left to the patterns (``doppel.pii.patterns``), which have
the contexts that rule look-alikes out. Tested in ``tests/doppel/test_pii_spellings.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from doppel.pii.normalize import Normalized
from doppel.pii.patterns import CARD_NOT_AFTER, ID
from doppel.pii.validators import card_issued, cn_id15_ok, cn_id_ok, luhn_ok, nanp_ok, ssn_ok

_SEP = r"(?:[ \t\u00a0]*[-./_·•,|][ \t\u00a0]*|\s{1,3})"
RUN = re.compile(rf"(?<![A-Za-z0-9_])[0-9](?:{_SEP}?[0-9])*(?:{_SEP}?[Xx](?![A-Za-z0-9_]))?(?![A-Za-z0-9_])")
_SEP_AT = re.compile(_SEP)
_ZH_NUMERALS = frozenset("零〇一幺二两三四五六七八九十百千")

MOBILE = re.compile(r"(?:0086|86)?1[3-9]\d{9}")
_MOBILE_SHAPES = frozenset({(11,), (3, 4, 4), (3, 8), (7, 4), (4, 4, 3), (3, 3, 5), (4, 7)})
_NANP_SHAPES = frozenset({(3, 3, 4), (1, 3, 3, 4)})
# What people space digits with when they write them one or two at a time (a comma makes a list).
_SPACING = frozenset(" -./_·•|")

QQ_BEFORE = re.compile(r"(?:QQ|qq|Qq|扣扣|企鹅)\s?(?:号码|號碼|号|號|账号|number|no\.?|#)?\s*(?:is\s+|是|为|:|：)?\s*$")
SSN_BEFORE = re.compile(r"(?:\bSSN|\bssn|social security(?: number| no\.?)?|\bsocial|社会安全号码?|社安号)"
                        r"\s*(?:#|number|no\.?)?\s*(?:is\s+|was\s+|:|：|=)?\s*$", re.IGNORECASE)
ID15_BEFORE = re.compile(r"(?:身份证|身份證|证件|證件|\bID\b|\bid card|identity)[^\n<>]{0,10}$", re.IGNORECASE)
# "code" alone only as "the code is ..." or a one-time code's name: a zip, area, error or status
# code, or code=1008 in a line of a program, is none.
CODE_BEFORE = re.compile(
    r"(?:(?:验证码|驗證碼|校验码|动态码|提取码|密码|密碼|口令|\bpin\b|\bpasscode|\bpassword|"
    r"\b(?:verification|security|access|login|otp|sms|2fa|auth|confirmation|one-time|one time)\s*code)"
    r"[^\n\d<>]{0,12}|"
    r"(?<!zip )(?<!area )(?<!postal )(?<!post )(?<!country )(?<!promo )(?<!coupon )(?<!error )(?<!status )"
    r"(?<!discount )(?<!invite )(?<!referral )(?<!dress )(?<!source )(?<!qr )(?<!bar )(?<!product )"
    r"\bcode\s*(?:is|was|:|：)\s*)$",
    re.IGNORECASE)


# A word that one of the context patterns needs, for a cheap look first.
_CONTEXT_CUE = re.compile(r"(?i:qq|ssn|social|\bid\b|id card|identity|pin|pass|code)|"
                          r"扣扣|企鹅|社会|社安|身份|证|證|码|碼|口令")


@dataclass(frozen=True)
class Run:
    """One digit run of the normalized text: its groups (start, end) and the separators between them."""

    groups: tuple[tuple[int, int], ...]
    seps: tuple[str, ...]
    x: int  # index of a trailing X (an ID's check character), or -1


def runs(text: str) -> list[Run]:
    found = []
    for match in RUN.finditer(text):
        if match.end() - match.start() < 4:  # fewer than four digits: no kind is that short
            continue
        groups, seps, x = [], [], -1
        position, end = match.start(), match.end()
        group_start = position
        while position < end:
            char = text[position]
            if char.isdigit():
                position += 1
                continue
            if char in "Xx":
                x = position
                groups.append((group_start, position))
                position = end
                break
            sep = _SEP_AT.match(text, position)
            groups.append((group_start, position))
            seps.append(sep.group().strip() or " ")
            position = sep.end()
            group_start = position
        if x < 0:
            groups.append((group_start, end))
        groups = [g for g in groups if g[1] > g[0]]
        if groups:
            found.append(Run(tuple(groups), tuple(seps[:len(groups) - 1]), x))
    return found


def _spelled(norm: Normalized, start: int, end: int) -> bool:
    """Typed as something other than ASCII or full-width digits: numerals, words, other scripts."""
    if norm.identity:
        return False
    for char in norm.original_of(start, end):
        if char in _ZH_NUMERALS or char.isalpha() or (char.isdigit() and not ("0" <= char <= "9"
                                                                              or "\uff10" <= char <= "\uff19")):
            return True
    return False


def find_numbers(norm: Normalized) -> list[tuple[str, int, int]]:
    """(type, start, end) in the normalized text for every number its runs hold."""
    text = norm.text
    found: list[tuple[str, int, int]] = []
    for run in runs(text):
        groups = run.groups
        before = text[max(0, groups[0][0] - 24):groups[0][0]]
        if not _CONTEXT_CUE.search(before):
            before = ""
            if len(groups) == 1 and run.x < 0 and not _spelled(norm, groups[0][0], groups[0][1]):
                continue  # one plain ASCII number and no context word: the patterns' business
        first = 0
        while first < len(groups):
            hit = _longest(norm, run, first, before if first == 0 else "")
            if hit:
                found.append(hit[0])
                first = hit[1]
            else:
                first += 1
    return found


def _longest(norm: Normalized, run: Run, first: int, before: str) -> tuple[tuple[str, int, int], int] | None:
    """The longest number that starts with group ``first``, and the index of the group after it."""
    text, groups = norm.text, run.groups
    for last in range(len(groups), first, -1):
        if len(set(run.seps[first:last - 1])) > 1:
            continue
        digits = "".join(text[s:e] for s, e in groups[first:last])
        if len(digits) > 19 or len(digits) < 4:
            continue
        start, end = groups[first][0], groups[last - 1][1]
        x = run.x if last == len(groups) else -1
        kind = _classify(norm, digits, tuple(e - s for s, e in groups[first:last]),
                         run.seps[first] if last - first > 1 else "", start, end, x, before)
        if kind:
            if kind[1]:
                end = x + 1
            if start and text[start - 1] == "+" and kind[0] == "PHONE":
                start -= 1
            return (kind[0], start, end), last
    return None


def _classify(norm: Normalized, digits: str, shape: tuple[int, ...], sep: str, start: int, end: int, x: int,
              before: str) -> tuple[str, bool] | None:
    """(type, takes the trailing X) for one sub-run, or None."""
    text = norm.text
    if x >= 0 and len(digits) == 17 and cn_id_ok(digits + "X"):
        return "ID", True
    plain = len(shape) == 1 and not _spelled(norm, start, end)
    if before:
        if QQ_BEFORE.search(before) and 5 <= len(digits) <= 11 and digits[0] != "0":
            return "ID", False
        if SSN_BEFORE.search(before) and ssn_ok(digits):
            return "ID", False
        if ID15_BEFORE.search(before) and cn_id15_ok(digits):
            return "ID", False
        if CODE_BEFORE.search(before) and 4 <= len(digits) <= 8:
            return "SECRET", False
    if plain:
        return None
    # One digit at a time is a way of spelling a number; with commas it is a list (8, 8, 7, 6, ...).
    spelled = (all(size == 1 for size in shape) and sep in _SPACING) or _spelled(norm, start, end)
    if len(digits) == 18 and cn_id_ok(digits):
        return "ID", False
    if MOBILE.fullmatch(digits) and (spelled or _mobile_shape(shape, len(digits) - 11, sep)):
        return "PHONE", False
    if nanp_ok(digits) and (spelled or shape in _NANP_SHAPES):
        return "PHONE", False
    if shape == (3, 2, 4) and sep == "-" and ssn_ok(digits):
        return "ID", False
    if 13 <= len(digits) <= 19 and card_issued(digits) and luhn_ok(digits) and \
            (spelled or all(4 <= size <= 6 for size in shape[:-1])) and \
            not (len(digits) == 18 and ID.fullmatch(digits)) and \
            not CARD_NOT_AFTER.search(text[max(0, start - 16):start]):
        return "CARD", False
    return None


def _mobile_shape(shape: tuple[int, ...], prefix: int, sep: str) -> bool:
    if prefix and shape[0] == prefix:
        shape = shape[1:]
    elif prefix:
        shape = (shape[0] - prefix, *shape[1:])
    return shape in _MOBILE_SHAPES or (sep in _SPACING and sep != "." and all(size <= 2 for size in shape))
