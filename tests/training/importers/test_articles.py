"""Blog posts: Markdown clean-up, ~500-character chunks, and Q/A pairs from a local fake endpoint."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from doppel.errors import InputError
from training.importers.articles import (
    Chunk,
    articles_to_qa,
    chat_completions_url,
    markdown_to_text,
    read_chunks,
    split_text,
)
from training.importers.detect import detect_format, import_file
from training.importers.json_repair import extract_pairs, repair_json

EXPORTS = Path(__file__).parents[2] / "fixtures" / "exports" / "articles"
POST = EXPORTS / "2023-05-01-why-i-hike.md"

# -- chunks -------------------------------------------------------------------------------------


def test_markdown_post_is_prose_only():
    text = markdown_to_text(POST.read_text(encoding="utf-8"))
    assert "echo" not in text and "```" not in text          # code blocks are not the author's voice
    assert "images/ridge.jpg" not in text and "![" not in text
    assert "good boots" in text and "example.org/boots" not in text
    assert "*every single time*" not in text and "every single time" in text


def test_post_imports_as_owner_chunks_with_its_front_matter():
    assert detect_format(POST) == "articles"
    result = import_file(POST, owner="Mia", tz="UTC")
    assert result.stats.owner_messages == len(result.messages) >= 2
    first = result.messages[0]
    assert (first.platform, first.chat_name, first.sender_name, first.is_owner) == (
        "article", "Why I hike (even in the rain)", "Mia", True)
    assert first.timestamp.isoformat() == "2023-05-01T00:00:00+00:00"
    assert all(len(m.text) <= 750 for m in result.messages)
    assert result.messages[1].source.endswith("why-i-hike.md:chunk 2")


def test_chinese_text_post_splits_on_sentences(tmp_path):
    chunks = read_chunks([EXPORTS / "周末随笔.txt"], target=100)
    assert len(chunks) >= 3
    for chunk in chunks:
        assert len(chunk.text) <= 150
        assert chunk.text[-1] in "。！？" or chunk is chunks[-1] or chunk.text.endswith("呢？")


def test_txt_post_needs_the_format_named():
    with pytest.raises(InputError, match="pass --format"):
        detect_format(EXPORTS / "周末随笔.txt")
    result = import_file(EXPORTS / "周末随笔.txt", fmt="articles", tz="UTC")
    assert result.messages and result.messages[0].chat_name == "周末随笔"


def _squash(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("abc de. 你好。！？,\n"), max_size=3000), st.integers(50, 800))
def test_chunks_keep_every_character_and_respect_the_limit(text, target):
    chunks = split_text(text, target)
    assert all(0 < len(c) <= target + target // 2 for c in chunks)
    assert _squash("".join(chunks)) == _squash(text)


def test_paragraphs_are_kept_whole_when_they_fit():
    paragraphs = [f"Paragraph {i} " + "word " * 30 for i in range(6)]
    chunks = split_text("\n\n".join(paragraphs), 500)
    for paragraph in paragraphs:
        assert any(paragraph.strip() in chunk for chunk in chunks)


# -- JSON repair --------------------------------------------------------------------------------

GOOD = [{"question": "Why hike in the rain?", "answer": "No crowds, and the moss glows."}]


@pytest.mark.parametrize("reply", [
    json.dumps(GOOD),
    "```json\n" + json.dumps(GOOD, indent=2) + "\n```",
    "Sure! Here are the pairs:\n" + json.dumps(GOOD) + "\nHope this helps.",
    '[{"question": "Why hike in the rain?", "answer": "No crowds, and the moss glows.",},]',
    "[{'question': 'Why hike in the rain?', 'answer': 'No crowds, and the moss glows.'}]",
    '[{question: "Why hike in the rain?", answer: "No crowds, and the moss glows."}]',
    '{"pairs": [{"q": "Why hike in the rain?", "a": "No crowds, and the moss glows."}]}',
    '[{“question”: “Why hike in the rain?”, “answer”: “No crowds, and the moss glows.”}]',
    '[{"question": "Why hike in the rain?", "answer": "No crowds, and the moss glows."}, {"question": "And the',
    "```json\n[{\"question\": \"Why hike in the rain?\", \"answer\": \"No crowds, and the moss glows.\"}]",
])
def test_replies_are_repaired(reply):
    value, _ = repair_json(reply)
    assert extract_pairs(value) == [("Why hike in the rain?", "No crowds, and the moss glows.")]


@pytest.mark.parametrize("reply", ["I cannot help with that.", "", "[[[", "{\"question\": }"])
def test_hopeless_replies_raise_value_error(reply):
    try:
        value, _ = repair_json(reply)
    except ValueError:
        return
    assert extract_pairs(value) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_repair_raises_nothing_but_value_error(reply):
    try:
        value, _ = repair_json(reply)
    except ValueError:
        return
    extract_pairs(value)


# -- the endpoint -------------------------------------------------------------------------------

REPLIES = {
    "GOOD": json.dumps([{"question": "q-good", "answer": "a-good"}, {"question": "q2", "answer": "a2"}]),
    "FENCED": "```json\n[{\"question\": \"q-fenced\", \"answer\": \"a-fenced\"},]\n```",
    "SINGLE": "[{'question': 'q-single', 'answer': 'a-single'}]",
    "BROKEN": "Sorry, I can only answer in prose today.",
    "NOPAIRS": json.dumps({"summary": "a post about hiking"}),
}


class FakeEndpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint whose reply depends on a marker in the passage."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, dict(self.headers), body))
        prompt = body["messages"][-1]["content"]
        if "FLAKY" in prompt:
            self.server.flaky += 1
            if self.server.flaky == 1:
                self._send(503, {"error": "busy"})
                return
            prompt = "GOOD"
        if "ALWAYS500" in prompt:
            self._send(500, {"error": "boom"})
            return
        if "NOTCHAT" in prompt:
            self._send(200, {"result": "ok"})
            return
        marker = next((m for m in REPLIES if m in prompt), "GOOD")
        self._send(200, {"id": "x", "object": "chat.completion",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLIES[marker]}}]})

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEndpoint)
    server.requests, server.flaky = [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _chunks(*markers: str) -> list[Chunk]:
    return [Chunk("post.md", "Post", i, f"A passage about hiking. {marker}") for i, marker in enumerate(markers)]


def test_good_and_repairable_replies_become_pairs_and_the_rest_is_counted(endpoint):
    url = f"http://127.0.0.1:{endpoint.server_port}"
    chunks = _chunks("GOOD", "FENCED", "SINGLE", "BROKEN", "NOPAIRS", "NOTCHAT", "ALWAYS500")
    result = articles_to_qa(chunks, url, "tiny-model", api_key="sk-test", author="Mia", backoff_s=0.01)
    assert [(q, a) for _, q, a in result.pairs] == [("q-good", "a-good"), ("q2", "a2"), ("q-fenced", "a-fenced"),
                                                    ("q-single", "a-single")]
    assert result.repaired == 2
    assert result.skipped == {"reply is not JSON and could not be repaired": 1,
                              "reply has no question/answer pairs": 1,
                              "response is not an OpenAI chat completion": 1, "HTTP 500": 1}
    path, headers, body = endpoint.requests[0]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "tiny-model" and "Mia" in body["messages"][-1]["content"]
    assert len(endpoint.requests) == 8  # the 500 was retried once


def test_a_busy_endpoint_is_retried(endpoint):
    result = articles_to_qa(_chunks("FLAKY"), f"http://127.0.0.1:{endpoint.server_port}/v1", "m", backoff_s=0.01)
    assert len(result.pairs) == 2 and not result.skipped


def test_unreachable_endpoint_is_one_clear_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InputError, match=r"cannot reach the endpoint"):
        articles_to_qa(_chunks("GOOD", "GOOD"), f"http://127.0.0.1:{port}", "m", retries=0)


def test_wrong_path_is_one_clear_error(endpoint):
    class NotFound(FakeEndpoint):
        def do_POST(self):
            self._send(404, {"error": "no such model"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(InputError, match=r"HTTP 404 .*check the endpoint URL, --model"):
            articles_to_qa(_chunks("GOOD"), f"http://127.0.0.1:{server.server_port}", "m")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("given, expected", [
    ("http://h:8000", "http://h:8000/v1/chat/completions"),
    ("http://h:8000/v1/", "http://h:8000/v1/chat/completions"),
    ("http://h/v1/chat/completions", "http://h/v1/chat/completions"),
])
def test_endpoint_urls(given, expected):
    assert chat_completions_url(given) == expected


def test_command_writes_sharegpt_that_imports_back(endpoint, tmp_path):
    from training.cli.data import data

    out = tmp_path / "qa.jsonl"
    result = CliRunner().invoke(data, ["articles-to-qa", str(POST), "--endpoint",
                                       f"http://127.0.0.1:{endpoint.server_port}", "--model", "m", "--out", str(out),
                                       "--owner", "Mia"])
    assert result.exit_code == 0, result.output
    assert "pairs from" in result.output and "written to" in result.output
    imported = import_file(out, owner="Mia")
    assert imported.format == "sharegpt"
    assert {m.text for m in imported.messages if m.is_owner} == {"a-good", "a2"}


def test_command_with_nothing_usable_fails(endpoint, tmp_path):
    from training.cli.data import data

    post = tmp_path / "post.md"
    post.write_text("BROKEN marker in a short post.")
    result = CliRunner().invoke(data, ["articles-to-qa", str(post), "--endpoint",
                                       f"http://127.0.0.1:{endpoint.server_port}", "--model", "m",
                                       "--out", str(tmp_path / "qa.jsonl")])
    assert isinstance(result.exception, InputError)
    assert "no question/answer pairs" in str(result.exception) and "could not be repaired: 1" in str(result.exception)
    assert not (tmp_path / "qa.jsonl").exists()
