"""Turn a language model's "JSON" reply into JSON: the repairs that real replies need.

Models wrap JSON in code fences, talk before and after it, leave trailing commas, use single or
curly quotes, write Python's True/None, leave keys unquoted, put raw newlines inside strings, and
stop mid-array when they run out of tokens. ``repair_json`` undoes each of these, in order of
increasing intrusiveness, and raises ``ValueError`` when nothing parseable is left.

Tested in ``tests/training/importers/test_articles.py`` (repairable and hopeless replies,
``extract_pairs``).
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_BARE_WORD = re.compile(r"[A-Za-z_\u4e00-\u9fff][\w\u4e00-\u9fff]*")
_LITERALS = {"True": "true", "False": "false", "None": "null"}
_CLOSE = {"{": "}", "[": "]"}


def repair_json(reply: str) -> tuple[Any, bool]:
    """(value, repaired) for the first JSON array or object in ``reply``; ValueError if hopeless."""
    text = reply.strip()
    try:
        return json.loads(text), False
    except ValueError:
        pass
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    elif text.startswith("```"):
        text = text.lstrip("`").split("\n", 1)[-1]  # an opening fence the reply never closed
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start < 0:
        raise ValueError("no JSON array or object in the reply")
    normalized = _normalize(text[start:])
    try:
        value, _ = json.JSONDecoder().raw_decode(normalized)
    except ValueError as exc:
        raise ValueError(f"cannot repair the reply ({exc})") from None
    return value, True


def _normalize(text: str) -> str:
    """One pass, string-aware: quotes, literals, bare keys, trailing commas, unclosed brackets.

    Stops after the first complete top-level value; if the text ends inside it, cuts back to
    the last complete element and closes what is open.
    """
    out: list[str] = []
    stack: list[str] = []
    last_complete = 0          # length of ``out`` after the last complete element at any depth
    stack_at_complete: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "\"'“‘":
            closing = {"\"": "\"", "'": "'", "“": "”", "‘": "’"}[char]
            string, i = _read_string(text, i + 1, closing)
            if i < 0:
                break  # unterminated string: cut back below
            out.append(json.dumps(string, ensure_ascii=False))
            continue
        if char in "{[":
            stack.append(char)
            out.append(char)
        elif char in "}]":
            if not stack:
                break
            while out and out[-1].strip() == "":
                out.pop()
            if out and out[-1] == ",":
                out.pop()  # trailing comma
            out.append(_CLOSE[stack.pop()])
            if not stack:
                return "".join(out)
            last_complete, stack_at_complete = len(out), list(stack)
        elif char == ",":
            if stack:
                last_complete, stack_at_complete = len(out), list(stack)
            out.append(char)
        elif char.isdigit() or char == "-":
            number = _NUMBER.match(text, i)
            token = number.group(0) if number else char
            out.append(token)
            i += len(token)
            continue
        elif char.isalpha() or char == "_" or "\u4e00" <= char <= "\u9fff":
            word = _BARE_WORD.match(text, i)
            token = word.group(0) if word else char
            i += len(token)
            if token in _LITERALS or token in ("true", "false", "null"):
                out.append(_LITERALS.get(token, token))
            else:
                out.append(json.dumps(token, ensure_ascii=False))  # an unquoted key or word
            continue
        else:
            out.append(char)
        i += 1
    if not stack:
        return "".join(out)
    # Ran out mid-value: keep what was complete and close the brackets still open then.
    kept = out[:last_complete] if last_complete else out[:1]
    while kept and kept[-1].strip() in (",", ""):
        kept.pop()
    return "".join(kept) + "".join(_CLOSE[b] for b in reversed(stack_at_complete if last_complete else stack[:1]))


def _read_string(text: str, i: int, closing: str) -> tuple[str, int]:
    """The string body from ``i`` up to ``closing``, and the index after it (-1 if unterminated)."""
    chars: list[str] = []
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n:
            nxt = text[i + 1]
            escapes = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/"}
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6] or ""):
                chars.append(chr(int(text[i + 2:i + 6], 16)))
                i += 6
                continue
            chars.append(escapes.get(nxt, nxt))
            i += 2
            continue
        if char == closing:
            return "".join(chars), i + 1
        chars.append(char)
        i += 1
    return "", -1


def extract_pairs(value: Any) -> list[tuple[str, str]]:
    """(question, answer) pairs from the shapes models reply with; [] when there are none."""
    if isinstance(value, dict):
        for key in ("pairs", "qa", "qa_pairs", "questions", "data", "items", "result", "results"):
            if isinstance(value.get(key), list):
                return extract_pairs(value[key])
        value = [value]
    pairs = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                question = _first(item, ("question", "q", "Q", "问题", "问"))
                answer = _first(item, ("answer", "a", "A", "回答", "答案", "答"))
                if question and answer:
                    pairs.append((question, answer))
            elif isinstance(item, list | tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
                if item[0].strip() and item[1].strip():
                    pairs.append((item[0].strip(), item[1].strip()))
    return pairs


def _first(item: dict, keys: tuple[str, ...]) -> str:
    for key in keys:
        value = item.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""
