"""The relay contract (doppel/relay.py) on its own: keys, and the Request/Reply wire schema.

No Redis here: round trips through ``to_fields``/``from_fields``, one test per way a stream entry
can break the schema (each must raise ``BadMessage`` naming the field), and Hypothesis properties
that the parsers, given any ``dict[str, str]``, return a message or raise ``BadMessage`` and never
anything else (the worker and the bot only catch ``BadMessage`` around them).
"""

from __future__ import annotations

import fnmatch
import json
import zlib

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from doppel.relay import (
    CHAT_TYPES,
    DEFAULT_MAX_TEXT_CHARS,
    REPLY_STATUSES,
    SCHEMA_VERSION,
    TRIGGERS,
    BadMessage,
    Keys,
    Reply,
    Request,
    bot_of,
    shard_of,
)

PROPERTY = settings(database=None, deadline=None, max_examples=300,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

REQUEST_FIELDS = sorted(Request._REQUIRED | Request._OPTIONAL)
REPLY_FIELDS = sorted(Reply._REQUIRED | Reply._OPTIONAL)


def request(**overrides) -> Request:
    values = dict(platform="discord", bot="b1", channel="discord:42", chat_type="group", author_id="u1",
                  author_name="Ann", text="hello", trigger="mention", sent_at=1_700_000_000.25,
                  id="r1", queued_at=1_700_000_001.5)
    values.update(overrides)
    return Request(**values)


def reply(**overrides) -> Reply:
    values = dict(request_id="r1", channel="discord:42", status="ok", parts=("hi", "there"),
                  worker="w1", adapter="me-v1", reply_to="m9", gen_ms=12.5, created_at=1_700_000_002.0,
                  reason="")
    values.update(overrides)
    return Reply(**values)


# -- round trips -----------------------------------------------------------------------------------

@pytest.mark.parametrize("message", [
    request(),
    request(text="ünïcødé ✓ 日本語 🙂 \u200b", author_name="Zoë 🦊", channel="telegram:-100123"),
    request(text="", reply_to="m1"),
    request(text="line one\n\nline two\r\n\ttabbed \"quoted\" \\ back"),
    request(text="x" * DEFAULT_MAX_TEXT_CHARS, chat_type="dm", trigger="dm"),
])
def test_request_round_trips(message):
    fields = message.to_fields()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())
    assert fields["v"] == str(SCHEMA_VERSION)
    assert Request.from_fields(fields) == message
    assert ("reply_to" in fields) == bool(message.reply_to), "an empty optional field is left out"


@pytest.mark.parametrize("message", [
    reply(),
    reply(parts=("ünïcødé 🙂", "日本語", 'with "quotes" and \\ and\nnewline')),
    reply(parts=(), status="rejected", reason="schema version '0' is not supported", worker="w2",
          adapter="", reply_to="", gen_ms=0.0),
    reply(parts=("",), status="error", reason="the engine failed; see the worker log"),
])
def test_reply_round_trips(message):
    fields = message.to_fields()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())
    assert Reply.from_fields(fields) == message
    for name in ("reason", "worker", "adapter", "reply_to", "gen_ms"):
        assert (name in fields) == bool(getattr(message, name)), f"empty {name} is left out"
    assert "\\u" not in fields["parts"], "parts are stored as UTF-8 JSON, not \\u escapes"


def test_reply_gen_ms_is_kept_to_the_microsecond():
    fields = reply(gen_ms=12.3456789).to_fields()
    assert fields["gen_ms"] == "12.346"
    assert Reply.from_fields(fields).gen_ms == pytest.approx(12.346)


@given(
    text=st.text(max_size=300), author_name=st.text(max_size=50), channel=st.text(min_size=1, max_size=80),
    reply_to=st.text(max_size=20), chat_type=st.sampled_from(CHAT_TYPES), trigger=st.sampled_from(TRIGGERS),
    bot=st.text(min_size=1, max_size=20).filter(lambda b: ":" not in b),
    sent_at=st.floats(allow_nan=False), queued_at=st.floats(allow_nan=False),
)
@PROPERTY
def test_any_valid_request_round_trips(text, author_name, channel, reply_to, chat_type, trigger, bot,
                                       sent_at, queued_at):
    message = request(text=text, author_name=author_name, channel=channel, reply_to=reply_to,
                      chat_type=chat_type, trigger=trigger, bot=bot, sent_at=sent_at, queued_at=queued_at)
    assert Request.from_fields(message.to_fields()) == message


@given(parts=st.lists(st.text(max_size=100), max_size=5).map(tuple), status=st.sampled_from(REPLY_STATUSES),
       reason=st.text(max_size=50), channel=st.text(max_size=50), created_at=st.floats(allow_nan=False))
@PROPERTY
def test_any_valid_reply_round_trips(parts, status, reason, channel, created_at):
    message = reply(parts=parts, status=status, reason=reason, channel=channel, created_at=created_at)
    assert Reply.from_fields(message.to_fields()) == message


# -- schema violations -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(Request._REQUIRED))
def test_request_missing_field_names_it(name):
    fields = request().to_fields()
    del fields[name]
    with pytest.raises(BadMessage, match=rf"missing field.*\b{name}\b"):
        Request.from_fields(fields)


@pytest.mark.parametrize("mutate, expected", [
    (lambda f: f.update(colour="red"), "unknown field colour"),
    (lambda f: f.update(colour="red", size="xl"), "unknown fields colour, size"),
    (lambda f: f.update(v="2"), "schema version '2'"),
    (lambda f: f.update(v="1.0"), "schema version '1.0'"),
    (lambda f: f.update(v=""), "schema version ''"),
    (lambda f: f.update(text="x" * (DEFAULT_MAX_TEXT_CHARS + 1)), "the limit is 16000"),
    (lambda f: f.update(sent_at="yesterday"), "field 'sent_at' must be a number"),
    (lambda f: f.update(queued_at=""), "field 'queued_at' must be a number"),
    (lambda f: f.update(sent_at="12,5"), "field 'sent_at' must be a number"),
    (lambda f: f.update(chat_type="room"), "field 'chat_type' is 'room'"),
    (lambda f: f.update(trigger="telepathy"), "field 'trigger' is 'telepathy'"),
    (lambda f: f.update(id=""), "field 'id' is empty"),
    (lambda f: f.update(channel=""), "field 'channel' is empty"),
    (lambda f: f.update(bot="b:1"), "field 'bot' must not contain ':'"),
])
def test_request_schema_violations_raise_bad_message_naming_the_field(mutate, expected):
    fields = request().to_fields()
    mutate(fields)
    with pytest.raises(BadMessage) as caught:
        Request.from_fields(fields)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value), "reasons are one line"


def test_request_text_limit_is_the_callers():
    fields = request(text="x" * 11).to_fields()
    with pytest.raises(BadMessage, match="text is 11 characters; the limit is 10"):
        Request.from_fields(fields, max_text_chars=10)
    assert Request.from_fields(fields, max_text_chars=11).text == "x" * 11


def test_a_huge_bad_value_is_quoted_only_in_part():
    fields = request().to_fields()
    fields["sent_at"] = "z" * 100_000
    with pytest.raises(BadMessage) as caught:
        Request.from_fields(fields)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("name", sorted(Reply._REQUIRED))
def test_reply_missing_field_names_it(name):
    fields = reply().to_fields()
    del fields[name]
    with pytest.raises(BadMessage, match=rf"missing field.*\b{name}\b"):
        Reply.from_fields(fields)


@pytest.mark.parametrize("mutate, expected", [
    (lambda f: f.update(colour="red"), "unknown field colour"),
    (lambda f: f.update(v="0"), "schema version '0'"),
    (lambda f: f.update(status="maybe"), "field 'status' is 'maybe'"),
    (lambda f: f.update(parts="not json"), "field 'parts' is not JSON"),
    (lambda f: f.update(parts='{"a": 1}'), "field 'parts' must be a JSON list of strings"),
    (lambda f: f.update(parts='"hi"'), "field 'parts' must be a JSON list of strings"),
    (lambda f: f.update(parts='["ok", 3]'), "field 'parts' must be a JSON list of strings"),
    (lambda f: f.update(parts="null"), "field 'parts' must be a JSON list of strings"),
    (lambda f: f.update(created_at="now"), "field 'created_at' must be a number"),
])
def test_reply_schema_violations_raise_bad_message_naming_the_field(mutate, expected):
    fields = reply().to_fields()
    mutate(fields)
    with pytest.raises(BadMessage) as caught:
        Reply.from_fields(fields)
    assert expected in str(caught.value)


def test_reply_bad_gen_ms_is_bad_message():
    fields = reply().to_fields()
    fields["gen_ms"] = "fast"
    with pytest.raises(BadMessage, match="gen_ms"):
        Reply.from_fields(fields)


@pytest.mark.parametrize("parts", ["[" + "1" * 5000 + "]", "[" * 100_000])
def test_reply_pathological_parts_json_is_bad_message(parts):
    fields = reply().to_fields()
    fields["parts"] = parts
    with pytest.raises(BadMessage, match="parts"):
        Reply.from_fields(fields)


@pytest.mark.parametrize("parse, valid", [(Request.from_fields, request()), (Reply.from_fields, reply())])
def test_unknown_field_names_are_quoted_and_bounded_in_the_reason(parse, valid):
    fields = valid.to_fields()
    fields["evil\nname" + "x" * 100_000] = "1"
    with pytest.raises(BadMessage) as caught:
        parse(fields)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 500


# -- never any exception but BadMessage --------------------------------------------------------------

VALUES = st.one_of(
    st.text(max_size=40),
    st.floats().map(repr),
    st.integers().map(str),
    st.sampled_from(["", "1", "0", "-1", "nan", "inf", "1e999", "[]", '["a"]', "[1]", "{}", "null", '"x"',
                     "dm", "group", "mention", "ok", "rejected", "error", str(SCHEMA_VERSION)]),
    st.lists(st.text(max_size=10), max_size=3).map(json.dumps),
)


def fields_of(names: list[str]):
    """Dicts whose keys are mostly schema field names (so parsing gets past the field checks)."""
    return st.dictionaries(st.one_of(st.sampled_from(names), st.text(max_size=10)), VALUES, max_size=16)


def mutated(valid: dict[str, str], names: list[str]):
    """``valid`` with one random change: a field dropped, replaced or added."""

    @st.composite
    def build(draw):
        fields = dict(valid)
        how = draw(st.sampled_from(["drop", "replace", "add"]))
        if how == "drop":
            del fields[draw(st.sampled_from(sorted(fields)))]
        elif how == "replace":
            fields[draw(st.sampled_from(names))] = draw(VALUES)
        else:
            fields[draw(st.text(max_size=10))] = draw(VALUES)
        return fields

    return build()


def parse_request(fields: dict[str, str]) -> None:
    try:
        assert isinstance(Request.from_fields(fields, max_text_chars=30), Request)
    except BadMessage as exc:
        assert str(exc)


def parse_reply(fields: dict[str, str]) -> None:
    try:
        assert isinstance(Reply.from_fields(fields), Reply)
    except BadMessage as exc:
        assert str(exc)


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=20))
@PROPERTY
def test_request_parser_on_any_dict_raises_only_bad_message(fields):
    parse_request(fields)


@given(fields_of(REQUEST_FIELDS))
@PROPERTY
def test_request_parser_on_near_schema_dicts_raises_only_bad_message(fields):
    parse_request(fields)


@given(mutated(request().to_fields() | {"reply_to": "m1"}, REQUEST_FIELDS))
@PROPERTY
def test_request_parser_on_one_mutation_raises_only_bad_message(fields):
    parse_request(fields)


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=20))
@PROPERTY
def test_reply_parser_on_any_dict_raises_only_bad_message(fields):
    parse_reply(fields)


@given(fields_of(REPLY_FIELDS))
@PROPERTY
def test_reply_parser_on_near_schema_dicts_raises_only_bad_message(fields):
    parse_reply(fields)


@given(mutated(reply(reason="why").to_fields(), REPLY_FIELDS))
@PROPERTY
def test_reply_parser_on_one_mutation_raises_only_bad_message(fields):
    parse_reply(fields)


# -- keys --------------------------------------------------------------------------------------------

PREFIXES = st.text(min_size=1, max_size=12).filter(lambda p: not set(p) & set(":*?[]\\ "))
NAMES = st.text(min_size=1, max_size=12)
BOTS = NAMES.filter(lambda b: ":" not in b)  # Request.validate rejects ':' in bot names
ROLES = st.sampled_from(["worker", "bot"])


def all_keys(keys: Keys, bot: str, name: str, role: str) -> dict[str, str]:
    """Every key (not group name) ``keys`` builds, by kind."""
    return {
        "requests": keys.requests, "dead_letter": keys.dead_letter, "replies": keys.replies(bot),
        "posted": keys.posted(bot, name), "channel_order": keys.channel_order(bot, name),
        "heartbeat": keys.heartbeat(role, name), "shard": keys.request_shard(len(name)),
        "shard_lease": keys.shard_lease(len(name)), "shard_count": keys.shard_count, "workers": keys.workers,
    }


@given(prefix=PREFIXES, bot=BOTS, name=NAMES, role=ROLES)
@PROPERTY
def test_every_key_is_under_the_prefix_and_kinds_never_collide(prefix, bot, name, role):
    built = all_keys(Keys(prefix), bot, name, role)
    assert all(key.startswith(prefix + ":") for key in built.values())
    assert len(set(built.values())) == len(built), "two kinds of key built the same name"
    assume(not set(bot) & set("*?[]\\"))  # a bot name with glob characters is matched by its own pattern only
    assert keys_match(Keys(prefix).heartbeat_pattern(), built["heartbeat"])
    assert keys_match(Keys(prefix).heartbeat_pattern(role), built["heartbeat"])
    assert keys_match(Keys(prefix).reply_streams_pattern(), built["replies"])


@given(a=PREFIXES, b=PREFIXES, bot_a=BOTS, bot_b=BOTS, name_a=NAMES, name_b=NAMES, role_a=ROLES, role_b=ROLES)
@PROPERTY
def test_different_prefixes_never_collide(a, b, bot_a, bot_b, name_a, name_b, role_a, role_b):
    assume(a != b)
    keys_a = set(all_keys(Keys(a), bot_a, name_a, role_a).values())
    keys_b = set(all_keys(Keys(b), bot_b, name_b, role_b).values())
    assert not keys_a & keys_b


@pytest.mark.parametrize("prefix", ["doppel:staging", "", "a*", "a b", "x[1]"])
def test_prefixes_that_could_collide_or_glob_are_refused(prefix):
    with pytest.raises(ValueError, match="prefix"):
        Keys(prefix)


@given(prefix=PREFIXES, channel=st.text(min_size=1, max_size=40), shards=st.integers(1, 1024))
@PROPERTY
def test_a_channel_has_one_shard_and_its_stream_names_it(prefix, channel, shards):
    keys = Keys(prefix)
    stream = keys.request_stream(channel, shards)
    assert stream in keys.request_streams(shards) and len(keys.request_streams(shards)) == shards + (shards > 1)
    shard = keys.shard_of_stream(stream)
    assert (shard is None) == (shards == 1) and stream == (keys.request_shard(shard) if shard is not None
                                                          else keys.requests)
    assert shard_of(channel, shards) == (shard or 0) < shards


def test_shards_are_stable_across_processes():
    # crc32, not hash(): every bot and every release puts a channel on the same shard.
    assert [shard_of(f"telegram:{i}", 8) for i in range(6)] == [
        zlib.crc32(f"telegram:{i}".encode()) % 8 for i in range(6)]
    assert shard_of("discord:42", 64) == 3341981645 % 64 == 13


def test_default_prefix_and_group_names():
    keys = Keys()
    assert keys.requests == "doppel:requests"
    assert keys.workers_group == "workers"
    assert keys.bot_group("b1") == "bot:b1"
    assert keys.replies("b1") != keys.replies("b2") and keys.bot_group("b1") != keys.bot_group("b2")


@given(prefix=PREFIXES, bot=BOTS, bot2=BOTS, name=NAMES, name2=NAMES)
@PROPERTY
def test_per_bot_keys_are_one_to_one(prefix, bot, bot2, name, name2):
    keys = Keys(prefix)
    assert (keys.posted(bot, name) == keys.posted(bot2, name2)) == ((bot, name) == (bot2, name2))
    assert (keys.channel_order(bot, name) == keys.channel_order(bot2, name2)) == ((bot, name) == (bot2, name2))
    assert (keys.replies(bot) == keys.replies(bot2)) == (bot == bot2)


@given(prefix=PREFIXES, role=ROLES, name=NAMES)
@PROPERTY
def test_heartbeat_name_inverts_heartbeat(prefix, role, name):
    keys = Keys(prefix)
    assert keys.heartbeat_name(keys.heartbeat(role, name)) == (role, name)


@given(prefix=PREFIXES, bot=BOTS)
@PROPERTY
def test_bot_of_replies_inverts_replies(prefix, bot):
    keys = Keys(prefix)
    assert keys.bot_of_replies(keys.replies(bot)) == bot


def test_heartbeat_name_keeps_colons_in_the_name():
    keys = Keys("doppel")
    assert keys.heartbeat_name(keys.heartbeat("worker", "host:1234")) == ("worker", "host:1234")


@pytest.mark.parametrize("fields, expected", [
    ({"bot": "b1"}, "b1"),
    ({"bot": "b:1"}, None),
    ({"bot": ""}, None),
    ({}, None),
    ({"bot": "b" * 201}, None),
])
def test_bot_of_a_malformed_request(fields, expected):
    assert bot_of(fields) == expected


def keys_match(pattern: str, key: str) -> bool:
    """Redis glob matching, for patterns whose only special character is ``*``."""
    return fnmatch.fnmatchcase(key, pattern)
