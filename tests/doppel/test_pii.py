"""The private-data scrubber: what it replaces, what it must leave alone, numbering within a
sample, the labelled evaluation (recall/precision targets), and properties under random input."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from doppel.pii import Scrubber
from doppel.pii.placeholders import PLACEHOLDER
from doppel.pii.validators import cn_id_ok, iban_ok, luhn_ok
from training.cli.build import pii_eval_cmd
from training.pii_eval.evalset import generate, read
from training.pii_eval.fakes import card, cn_id, cn_mobile, email, iban
from training.pii_eval.score import TARGET_PRECISION, TARGET_RECALL, evaluate_scrubber, format_result

ROOT = Path(__file__).resolve().parents[2]
EVAL_SET = ROOT / "tests" / "fixtures" / "pii_eval.jsonl"
SCRUBBER = Scrubber()


@pytest.mark.parametrize("text, value, placeholder", [
    ("我手机号13812345678，到了给我打电话", "13812345678", "<PHONE>"),
    ("电话 +86 138 1234 5678", "+86 138 1234 5678", "<PHONE>"),
    ("座机010-65529988转8012", "010-65529988", "<PHONE>"),
    ("call me at (415) 555-0132 tonight", "(415) 555-0132", "<PHONE>"),
    ("whatsapp +44 7700 900123", "+44 7700 900123", "<PHONE>"),
    ("发我邮箱 zhang.san@163.com 吧", "zhang.san@163.com", "<EMAIL>"),
    ("cc Bob.Smith+work@acme.co.uk on that", "Bob.Smith+work@acme.co.uk", "<EMAIL>"),
    ("身份证号 11010519491231002X", "11010519491231002X", "<ID>"),
    ("卡号 6222 0212 3456 7890 128 户名李四", "6222 0212 3456 7890 128", "<CARD>"),
    ("use my visa 4111-1111-1111-1111", "4111-1111-1111-1111", "<CARD>"),
    ("ssh root@192.168.1.23 and restart it", "192.168.1.23", "<IP>"),
    ("会议链接 https://zoom.us/j/123456789?pwd=AbCdEf123 进来", "https://zoom.us/j/123456789?pwd=AbCdEf123", "<URL>"),
    ("clone https://deploy:s3cret@git.example.org/app.git", "https://deploy:s3cret@git.example.org/app.git", "<URL>"),
    ("寄到上海市浦东新区世纪大道100号3单元502，谢谢", "上海市浦东新区世纪大道100号3单元502", "<ADDRESS>"),
    ("I live at 221B Baker Street, London", "221B Baker Street", "<ADDRESS>"),
    ("wifi密码是 abc12345", "abc12345", "<SECRET>"),
    ("password: Tr0ub4dor&3", "Tr0ub4dor&3", "<SECRET>"),
    ("验证码 384756，五分钟内有效", "384756", "<SECRET>"),
    ("key给你 sk-proj-abcdefghijklmnopqrstuvwxyz0123", "sk-proj-abcdefghijklmnopqrstuvwxyz0123", "<SECRET>"),
    ("my IBAN: DE89 3704 0044 0532 0130 00 thanks", "DE89 3704 0044 0532 0130 00", "<IBAN>"),
    ("send it to NL91ABNA0417164300.", "NL91ABNA0417164300", "<IBAN>"),
    ("account AT61 1904 3002 3457 3201 pls", "AT61 1904 3002 3457 3201", "<IBAN>"),
    ("it's 1428 w belmont ave apt 3b", "1428 w belmont ave apt 3b", "<ADDRESS>"),
    ("apt 4b, 350 w 42nd st", "350 w 42nd st", "<ADDRESS>"),
    ("PARTY AT MY PLACE!!! 77 N HALSTED ST 🎉", "77 N HALSTED ST", "<ADDRESS>"),
    ("The new Wi-Fi password is: Gerald&Miso2025", "Gerald&Miso2025", "<SECRET>"),
    ("the netflix pw is now Rosemary#2025", "Rosemary#2025", "<SECRET>"),
])
def test_private_values_become_typed_placeholders(text, value, placeholder):
    scrubbed, findings = SCRUBBER.scrub(text)
    assert value not in scrubbed
    assert placeholder in scrubbed
    assert scrubbed == text.replace(value, placeholder), "only the value is replaced; the words around it stay"
    assert [f.value for f in findings] == [value]


@pytest.mark.parametrize("text", [
    "订单号：202311051234567890", "快递单号 SF1234567890123，明天到", "order #112-3456789-1234567",
    "2023-11-05 14:30:00 见", "11/05/2023", "2023年11月5日", "这件¥1380，贵不贵", "it was $1,299.99",
    "升级到 v2.3.1 了", "Python 3.11.4", "version 1.2.3.4 is out", "时间戳是1699999999", "ts=1700000000123",
    "这个身份证号好像不对 110105194912310021", "typo card 4111 1111 1111 1112", "打10086问问", "编号12345678901",
    "看这个 https://github.com/huggingface/transformers/issues/1234", "https://example.com/search?q=hello&page=2",
    "@张三 你在吗", "meet@3pm?", "ISBN 978-7-111-54742-6", "坐地铁2号线过来", "下个月5号发工资", "我在3号楼下面等你",
    "密码是多少", "the password is wrong", "token limit is 4096", "I walked 5 blocks down the road",
    "比分3:2", "分辨率1920x1080", "涨了12.5%", "坐标 39.9042, 116.4074", "[捂脸]", "哈哈哈哈哈😂",
    "I WALKED 5 BLOCKS DOWN THE ROAD", "2 DAYS WAY TOO LONG", "the password is now changed",
    "DE88 3704 0044 0532 0130 00 has a wrong check", "GB29 NWBK 6016 1331 9268 1 is too short", "SKU AB12 CDEF 3456",
])
def test_look_alikes_are_left_alone(text):
    assert SCRUBBER.scrub(text) == (text, [])


def test_ids_and_cards_are_validated_not_just_shaped():
    assert cn_id_ok("11010519491231002X") and not cn_id_ok("110105194912310021")
    assert not cn_id_ok("110105194902301234"), "30 February is not a birth date"
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    # Luhn-valid, but an order number by its context, and an 18-digit Visa does not exist.
    assert SCRUBBER.find("订单号 4111111111111111") == []
    assert [f.type for f in SCRUBBER.find("4111111111111111")] == ["CARD"]


def test_ibans_are_validated_by_country_length_and_mod_97():
    assert iban_ok("GB29NWBK60161331926819") and iban_ok("gb29nwbk60161331926819")
    assert not iban_ok("GB28NWBK60161331926819"), "one check digit off"
    assert not iban_ok("GB29NWBK6016133192681"), "a GB IBAN has 22 characters"
    assert not iban_ok("ZZ29NWBK60161331926819"), "no such country"
    for country in ("DE", "GB", "NL", "FR", "ES", "IT", "BE", "AT"):
        value = iban(random.Random(country), country)
        assert iban_ok(value.replace(" ", "")), value
        assert [(f.type, f.value) for f in SCRUBBER.find(f"pay {value} by friday")] == [("IBAN", value)]


def test_one_value_is_one_placeholder_and_several_are_numbered_within_a_sample():
    texts = ["call 138 1234 5678 or 139-8765-4321", "13812345678 is better", "mail a@b.com"]
    scrubbed, findings = SCRUBBER.scrub_texts(texts)
    assert scrubbed == ["call <PHONE_1> or <PHONE_2>", "<PHONE_1> is better", "mail <EMAIL>"]
    assert [len(f) for f in findings] == [2, 1, 1]
    # The numbering is per sample: alone, the second text's phone is just <PHONE>.
    assert SCRUBBER.scrub("13812345678 is better")[0] == "<PHONE> is better"


def test_the_same_e_mail_in_other_case_is_the_same_value():
    scrubbed, _ = SCRUBBER.scrub_texts(["Jane.Doe@Example.com", "jane.doe@example.com again"])
    assert scrubbed == ["<EMAIL>", "<EMAIL> again"]


def test_types_can_be_limited_and_unknown_ones_are_refused():
    only_email = Scrubber(types=["EMAIL"])
    assert only_email.scrub("a@b.com 13812345678")[0] == "<EMAIL> 13812345678"
    with pytest.raises(ValueError, match="unknown PII types"):
        Scrubber(types=["PHONE", "NAME"])


def test_evaluation_set_meets_the_targets():
    result = evaluate_scrubber(EVAL_SET)
    print("\n" + format_result(result))
    assert result["planted"] >= 300
    assert {r["lang"] for r in read(EVAL_SET)} == {"zh", "en"}
    assert result["lookalikes"] >= 150
    assert all(row["planted"] >= 20 for row in result["per_type"].values()), "every type is planted"
    assert result["recall"] >= TARGET_RECALL, result["misses"][:10]
    assert result["precision"] >= TARGET_PRECISION, result["false_positives"][:10]


def test_the_shipped_evaluation_set_is_what_the_generator_writes():
    assert read(EVAL_SET) == generate(), "regenerate: python -m training.pii_eval.evalset tests/fixtures/pii_eval.jsonl"


def test_pii_eval_command_prints_the_figures_and_fails_below_target(tmp_path):
    result = CliRunner().invoke(pii_eval_cmd, [str(EVAL_SET)])
    assert result.exit_code == 0, result.output
    assert "recall" in result.output and "precision" in result.output and "PHONE" in result.output
    hard = tmp_path / "hard.jsonl"
    hard.write_text('{"id": "x", "lang": "en", "text": "my number is 5550132", '
                    '"pii": [{"type": "PHONE", "start": 13, "end": 20, "value": "5550132"}], "lookalikes": []}\n')
    result = CliRunner().invoke(pii_eval_cmd, [str(hard)])
    assert result.exit_code != 0 and "below target" in str(result.exception)


def test_a_broken_evaluation_file_is_named_with_its_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "hi", "pii": []}\n{"id": "b", "text": "x", "pii": [{"type": "PHONE", '
                   '"start": 0, "end": 5, "value": "12345"}]}\n')
    from doppel.errors import InputError

    with pytest.raises(InputError, match=r"bad\.jsonl:2: not a PII evaluation record"):
        read(bad)


def test_the_scrubber_imports_nothing_heavy():
    code = "import sys, doppel.pii; sys.exit(any(m in sys.modules for m in ('torch', 'transformers', 'pydantic')))"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_every_evaluation_line_scrubs_to_a_fixed_point():
    for record in read(EVAL_SET):
        once, _ = SCRUBBER.scrub(record["text"])
        assert SCRUBBER.scrub(once) == (once, []), record["id"]


# -- properties -------------------------------------------------------------------------------

_ALPHABET = st.sampled_from([*"abcXYZ019 .-:=@/+#<>_？，。：号路街密码是电话",
                             "password: ", "密码是", "验证码", "PIN ", "token=", "?key=", "http://", "www.", "@a.com",
                             "138", "+86 ", "号", " St", "<PHONE>", "<SECRET_2>"])
_NOISE = st.lists(_ALPHABET, max_size=25).map("".join)
_SEPARATORS = st.sampled_from([" ", "，", "。", "\n", " (", ") ", "：", "、"])


@st.composite
def _planted(draw) -> str:
    maker = draw(st.sampled_from([cn_mobile, email, cn_id, card, iban]))
    seed = draw(st.integers(0, 2**32 - 1))
    return maker(random.Random(seed))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_scrub_never_raises_and_keeps_text_without_findings(text):
    scrubbed, findings = SCRUBBER.scrub(text)
    if not findings:
        assert scrubbed == text
    for finding in findings:
        assert text[finding.start:finding.end] == finding.value


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_NOISE, _planted()), max_size=6).map(" ".join))
def test_scrub_is_idempotent(text):
    once, _ = SCRUBBER.scrub(text)
    assert SCRUBBER.scrub(once)[0] == once


@settings(max_examples=400, deadline=None)
@given(_NOISE, _SEPARATORS, _planted(), _SEPARATORS, _NOISE)
def test_a_planted_valid_value_never_survives(before, left, value, right, after):
    text = before + left + value + right + after
    scrubbed, _ = SCRUBBER.scrub(text)
    assert value not in scrubbed, (text, scrubbed)
    assert PLACEHOLDER.search(scrubbed)
