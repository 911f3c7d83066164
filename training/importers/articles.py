"""The owner's long-form voice: Markdown or text posts, cut into ~500-character chunks, and
turned into question/answer pairs through any OpenAI-compatible chat endpoint.

Chunks end on paragraph boundaries where possible, else on sentence boundaries (。！？ as well as
. ! ?), and are never longer than 1.5 times the target. Markdown syntax that is not prose (code
blocks, images, HTML, link targets, front matter) is removed. As an import format each chunk is a
Message from the owner in a one-author "chat" per post.

``articles_to_qa`` asks the endpoint for JSON pairs per chunk; replies that are not valid JSON are
repaired (``training.importers.json_repair``) and what cannot be repaired is counted, never fatal. Only a
wrong URL, model or key (no answer at all, 401/403/404) stops the run: each chunk would fail the
same way.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from doppel.errors import InputError
from training.importers.base import Source, clean_name, detect_encoding, from_epoch, iter_lines, local_time
from training.importers.json_repair import extract_pairs, repair_json
from training.importers.messages import Kind, Message

TARGET_CHARS = 500
ARTICLE_EXTENSIONS = (".md", ".markdown", ".txt")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
_FENCED_CODE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_HTML = re.compile(r"<[^>\n]+>")
_LINE_MARKUP = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+(?=\S)|\d+[.)]\s+)", re.M)
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(?=\S)(.+?)(?<=\S)\1")
_SENTENCE_END = re.compile(r"[。！？!?…]+[”」』\"'’）)]*|[.;:](?=\s)|\n+")
_PARAGRAPHS = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Chunk:
    source: str        # file path
    title: str
    index: int         # 0-based position in its post
    text: str


def markdown_to_text(markdown: str) -> str:
    text = _FENCED_CODE.sub("", markdown.replace("\r\n", "\n"))
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _HTML.sub("", text)
    text = _LINE_MARKUP.sub("", text)
    return _EMPHASIS.sub(r"\2", text)


def _sentences(paragraph: str) -> list[str]:
    out, start = [], 0
    for match in _SENTENCE_END.finditer(paragraph):
        piece = paragraph[start:match.end()].strip()
        if piece:
            out.append(piece)
        start = match.end()
    tail = paragraph[start:].strip()
    return [*out, tail] if tail else out


def _hard_split(sentence: str, size: int) -> list[str]:
    """Cut a sentence with no usable boundary, preferring a space or comma near the end."""
    out = []
    while len(sentence) > size:
        window = sentence[:size]
        cut = max(window.rfind(" "), window.rfind("，"), window.rfind(","), window.rfind("、"))
        cut = cut + 1 if cut >= size // 2 else size
        out.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    return [*out, sentence] if sentence else out


def split_text(text: str, target: int = TARGET_CHARS) -> list[str]:
    """Chunks of about ``target`` characters, none longer than ``1.5 * target``."""
    limit = target + target // 2
    pieces: list[str] = []
    for paragraph in _PARAGRAPHS.split(text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if len(paragraph) <= limit:
            pieces.append(paragraph)
            continue
        current = ""
        for sentence in _sentences(paragraph):
            for part in _hard_split(sentence, target) if len(sentence) > limit else [sentence]:
                if current and len(current) + 1 + len(part) > target:
                    pieces.append(current)
                    current = part
                else:
                    current = f"{current} {part}" if current and not _cjk(current[-1]) else current + part
        if current:
            pieces.append(current)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 2 + len(piece) <= target:
            chunks[-1] += "\n\n" + piece
        else:
            chunks.append(piece)
    if len(chunks) > 1 and len(chunks[-1]) < target // 4 and len(chunks[-2]) + 2 + len(chunks[-1]) <= limit:
        # Pop first: ``chunks[-2] += ... chunks.pop()`` reads chunks[-2] before the pop, then stores
        # the sum one place too early (an IndexError with two chunks, a lost chunk with more).
        tail = chunks.pop()
        chunks[-1] += "\n\n" + tail
    return chunks


def _cjk(char: str) -> bool:
    return "\u3000" <= char <= "\u9fff" or "\uff00" <= char <= "\uffef"


def read_post(src: Source) -> tuple[str, datetime, str]:
    """(title, date, prose) of one post; the date comes from front matter, else the file's mtime."""
    encoding = detect_encoding(src, ("utf-8", "gb18030"))
    text = "\n".join(line for _, line in iter_lines(src, encoding))
    title, date = "", None
    front = _FRONT_MATTER.match(text)
    if front:
        text = text[front.end():]
        for line in front.group(1).splitlines():
            key, _, value = line.partition(":")
            value = value.strip().strip("'\"")
            if key.strip().lower() == "title":
                title = value
            elif key.strip().lower() == "date" and value:
                date = _parse_date(value, src)
    if not title:
        heading = re.search(r"^#\s+(.+)$", text, re.M)
        title = heading.group(1).strip() if heading else src.path.stem
    if date is None:
        date = from_epoch(src.path.stat().st_mtime, src.tz)
    return clean_name(title), date, markdown_to_text(text)


def _parse_date(value: str, src: Source) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(value.replace(" ", "T", 1) if len(value) > 10 else value)
    except ValueError:
        return None
    if stamp.tzinfo:
        return stamp
    return local_time(stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second, src.tz)


def parse(src: Source) -> Iterator[Message]:
    src.stats.owner_marked = True
    owner = src.owner.names[0] if src.owner.names else "owner"
    title, date, text = read_post(src)
    chunks = split_text(text)
    src.stats.records += len(chunks)
    for index, chunk in enumerate(chunks):
        yield Message(platform="article", chat_id=str(src.path), chat_name=title, chat_type="dm", sender_id=owner,
                      sender_name=owner, is_owner=True, timestamp=date, text=chunk, kind=Kind.TEXT,
                      message_id=str(index), source=src.where(f"chunk {index + 1}"))


def read_chunks(paths: Iterable[str | Path], target: int = TARGET_CHARS) -> list[Chunk]:
    """Chunks of every post in ``paths`` (files, or directories searched for .md/.markdown/.txt)."""
    from training.importers.base import Owner

    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in ARTICLE_EXTENSIONS)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    chunks = []
    for file in files:
        src = Source(file, "articles", Owner(), None)
        title, _, text = read_post(src)
        chunks += [Chunk(str(file), title, i, c) for i, c in enumerate(split_text(text, target))]
    return chunks


# -- question/answer pairs -------------------------------------------------------------------

@dataclass
class QAResult:
    pairs: list[tuple[Chunk, str, str]] = field(default_factory=list)   # (chunk, question, answer)
    chunks: int = 0
    repaired: int = 0                    # replies that needed repair to parse
    skipped: Counter = field(default_factory=Counter)                # reason -> chunks

    def records(self, owner: str = "") -> Iterator[dict]:
        """ShareGPT records (``doppel data import`` reads them back, the gpt side as the owner)."""
        for chunk, question, answer in self.pairs:
            yield {"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
                   "source": f"{chunk.source}#{chunk.index + 1}", **({"author": owner} if owner else {})}


def qa_prompt(chunk: Chunk, author: str, pairs: int) -> list[dict[str, str]]:
    who = author or "the author"
    return [
        {"role": "system", "content": "You turn passages into question/answer pairs for fine-tuning a model to "
                                      "talk like the passage's author. Reply with JSON only."},
        {"role": "user", "content": (
            f"Passage by {who} (from \"{chunk.title}\"):\n\n{chunk.text}\n\n"
            f"Write {pairs} questions a friend might ask {who} that this passage answers, each with the answer "
            f"{who} would give: first person, in the passage's language, tone and wording. Reply with only a JSON "
            'array: [{"question": "...", "answer": "..."}]')},
    ]


def chat_completions_url(endpoint: str) -> str:
    """Accept a server root, a /v1 base or the full /v1/chat/completions URL."""
    url = endpoint.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def _ask(url: str, body: bytes, headers: dict[str, str], timeout_s: float, retries: int,
         backoff_s: float) -> tuple[str | None, str]:
    """(reply text, "") or (None, skip reason); raises InputError for a wrong endpoint or key."""
    reason = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * attempt)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                payload = json.loads(response.read().decode("utf-8", errors="replace"))
            return str(payload["choices"][0]["message"]["content"] or ""), ""
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403, 404):
                raise InputError(f"{url}: HTTP {exc.code} {exc.reason}: check the endpoint URL, --model and the "
                                 "API key") from None
            reason = f"HTTP {exc.code}"
            if exc.code not in (408, 409, 429) and exc.code < 500:
                return None, reason
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                reason = "timeout"
                continue
            raise InputError(f"{url}: cannot reach the endpoint ({exc.reason})") from None
        except TimeoutError:
            reason = "timeout"
        except (ValueError, KeyError, IndexError, TypeError):
            return None, "response is not an OpenAI chat completion"
        except (OSError, http.client.HTTPException):
            reason = "connection dropped"
    return None, reason


def articles_to_qa(chunks: list[Chunk], endpoint_url: str, model: str, *, api_key: str | None = None,
                   author: str = "", pairs_per_chunk: int = 3, temperature: float = 0.7,
                   max_tokens: int = 1024, timeout_s: float = 120.0, retries: int = 1, backoff_s: float = 1.0,
                   concurrency: int = 4, progress: Callable[[int], None] | None = None) -> QAResult:
    """Question/answer pairs for ``chunks`` from an OpenAI-compatible ``/v1/chat/completions``."""
    url = chat_completions_url(endpoint_url)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    result = QAResult(chunks=len(chunks))

    def one(chunk: Chunk) -> tuple[Chunk, str | None, str]:
        body = json.dumps({"model": model, "messages": qa_prompt(chunk, author, pairs_per_chunk),
                           "temperature": temperature, "max_tokens": max_tokens}).encode()
        reply, reason = _ask(url, body, headers, timeout_s, retries, backoff_s)
        return chunk, reply, reason

    pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
    try:
        for done, (chunk, reply, reason) in enumerate(pool.map(one, chunks), 1):
            if progress is not None:
                progress(done)
            if reply is None:
                result.skipped[reason] += 1
                continue
            try:
                value, repaired = repair_json(reply)
            except ValueError:
                result.skipped["reply is not JSON and could not be repaired"] += 1
                continue
            pairs = extract_pairs(value)
            if not pairs:
                result.skipped["reply has no question/answer pairs"] += 1
                continue
            result.repaired += repaired
            result.pairs += [(chunk, q, a) for q, a in pairs]
    finally:
        # A wrong endpoint fails every chunk the same way: do not send the ones still queued.
        pool.shutdown(wait=True, cancel_futures=True)
    return result
