"""The OpenAI chat-completions wire format, as far as Doppel's endpoint speaks it.

``parse_request`` validates a ``POST /v1/chat/completions`` body (pydantic) and turns it into an
``Ask``: the earlier messages as history turns, the last user message as the question, the
sampling values the worker can take per channel, and the names of what the clone cannot honour
(system messages, ``stop``, ``seed``, tools, ...). Those are ignored, never silently: the
response lists them in its ``X-Doppel-Ignored`` header. The persona is the clone's own (the
adapter and ``[data] persona``), so a client's system message does not change it.

Every refusal is an ``ApiError`` that renders as OpenAI's error JSON,
``{"error": {"message", "type", "param", "code"}}``, with the HTTP status a client expects.
Imports nothing heavy: it runs in the bot process.

Tested in ``tests/bot/test_openai_api.py`` (request validation, OpenAI error bodies, ignored parameters,
history turns and sampling overrides).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from doppel.prompt import BURST_SEPARATOR

# Body fields the endpoint acts on; any other field a client sends is reported as ignored.
_HONOURED = frozenset(("model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens",
                       "presence_penalty", "stream", "stream_options", "n", "user"))


class ApiError(Exception):
    """A request the endpoint refuses, rendered as OpenAI's error object."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    # Unknown per-message fields (refusal, audio, ...) are legal in the API and carry no text.
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None
    name: Annotated[str, Field(max_length=200)] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1, max_length=200)]
    messages: Annotated[list[Message], Field(min_length=1)]
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(gt=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    stream: bool = False
    stream_options: dict | None = None
    n: Annotated[int, Field(ge=1, le=1)] | None = None
    user: Annotated[str, Field(max_length=200)] | None = None


@dataclass(frozen=True)
class Turn:
    """One earlier message: a friend's (user) or the clone's own (assistant)."""

    is_owner: bool
    speaker: str
    text: str


@dataclass(frozen=True)
class Ask:
    model: str
    history: tuple[Turn, ...]
    question: str
    author: str
    sampling: dict[str, str]          # channel overrides the worker reads (inference.backends.base.Sampling)
    stream: bool = False
    include_usage: bool = False
    ignored: tuple[str, ...] = ()
    prompt_chars: int = 0


def parse_request(body: object, *, max_text_chars: int, max_messages: int) -> Ask:
    """The ``Ask`` for a chat-completions body; raises ``ApiError`` (400) for what cannot be served."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if "messages" not in body:
        raise ApiError(400, "'messages' is required", code="missing_required_parameter", param="messages")
    if "model" not in body:
        raise ApiError(400, "'model' is required (GET /v1/models lists them)", code="missing_required_parameter",
                       param="model")
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"])
        more = len(exc.errors()) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ApiError(400, f"{param}: {first['msg']}{tail}", param=param, code="invalid_value") from None
    ignored = [name for name, value in (request.model_extra or {}).items() if value is not None]
    conversation = []
    for index, message in enumerate(request.messages):
        if message.role in ("system", "developer"):
            if "system message" not in ignored:
                ignored.append("system message")
            continue
        if message.role in ("tool", "function"):
            raise ApiError(400, f"messages.{index}: role '{message.role}' is not supported: the clone has no tools",
                           param=f"messages.{index}.role", code="unsupported_value")
        text = message.text()
        if len(text) > max_text_chars:
            raise ApiError(400, f"messages.{index}: {len(text)} characters; the limit is {max_text_chars}",
                           param=f"messages.{index}.content", code="context_length_exceeded")
        conversation.append((message, text))
    if not conversation or conversation[-1][0].role != "user":
        raise ApiError(400, "the last message (after any system messages) must be from the user: the clone "
                            "answers the user's message", param="messages", code="invalid_value")
    if len(conversation) > max_messages:
        raise ApiError(400, f"{len(conversation)} messages; the limit is {max_messages} ([history] max_stored)",
                       param="messages", code="context_length_exceeded")
    last, question = conversation[-1]
    if not question.strip():
        raise ApiError(400, "the last user message is empty", param=f"messages.{len(request.messages) - 1}.content",
                       code="invalid_value")
    author = last.name or request.user or "user"
    history = tuple(Turn(message.role == "assistant", message.name or "", text)
                    for message, text in conversation[:-1] if text.strip())
    max_tokens = request.max_completion_tokens or request.max_tokens
    sampling = {name: str(value) for name, value in (("temperature", request.temperature), ("top_p", request.top_p),
                                                      ("max_tokens", max_tokens),
                                                      ("presence_penalty", request.presence_penalty))
                if value is not None}
    return Ask(model=request.model, history=history, question=question, author=author, sampling=sampling,
               stream=request.stream, include_usage=bool((request.stream_options or {}).get("include_usage")),
               ignored=tuple(ignored), prompt_chars=sum(len(text) for _, text in conversation))


# -- responses -----------------------------------------------------------------------------------

def estimate_tokens(chars: int) -> int:
    """A rough token count (the worker does not report one): about 3 characters a token."""
    return chars // 3 + 1 if chars else 0


@dataclass
class Completion:
    """One answer, rendered as a chat.completion object or as its stream of chunks."""

    model: str
    content: str
    prompt_chars: int
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def from_parts(cls, model: str, parts, prompt_chars: int) -> Completion:
        # Parts are a burst: the blank line between them is how the clone was trained to write one.
        return cls(model, BURST_SEPARATOR.join(parts), prompt_chars)

    def usage(self) -> dict:
        prompt, completion = estimate_tokens(self.prompt_chars), estimate_tokens(len(self.content))
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def body(self) -> dict:
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": self.content},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": self.usage()}

    def chunks(self, include_usage: bool = False) -> list[dict]:
        """The chunks of a streamed answer: the role, the text, the finish (and the usage if asked)."""
        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

        out = [chunk({"role": "assistant", "content": ""})]
        if self.content:
            out.append(chunk({"content": self.content}))
        out.append(chunk({}, "stop"))
        if include_usage:
            out.append({**chunk({}), "choices": [], "usage": self.usage()})
        return out
