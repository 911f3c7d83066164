"""The scrubber against the spellings people type to get past it (issue 14): the adversarial
evaluation set (``training.pii_eval.adversarial``) is what its generator writes, its values are
valid by the rules of their kinds, it is separate from the tuning set, and the scrubber meets the
targets on it; one regression test per spelling family and per new kind, the look-alikes those
spellings make dangerous, and properties: findings land on the original span, the text around
them is unchanged, no digit run of a found value is left. The owner's own values
(``doppel.pii.private``): found in any spelling, the file, removed by the build."""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doppel.pii import Scrubber
from doppel.pii.normalize import normalize
from doppel.pii.placeholders import PLACEHOLDER
from doppel.pii.validators import cn_id15_ok, hk_id_ok, nanp_ok, ssn_ok, tw_id_ok
from training.pii_eval import spellings
from training.pii_eval.adversarial import generate
from training.pii_eval.evalset import read
from training.pii_eval.score import TARGET_PRECISION, TARGET_RECALL, evaluate_scrubber, format_result

ROOT = Path(__file__).resolve().parents[2]
ADVERSARIAL_SET = ROOT / "tests" / "fixtures" / "pii_adversarial.jsonl"
TUNING_SET = ROOT / "tests" / "fixtures" / "pii_eval.jsonl"


def test_the_shipped_adversarial_set_is_what_the_generator_writes():
    assert read(ADVERSARIAL_SET) == generate(), \
        "regenerate: python -m training.pii_eval.adversarial tests/fixtures/pii_adversarial.jsonl"


def test_the_adversarial_set_is_large_bilingual_mostly_obfuscated_and_apart_from_the_tuning_set():
    records = read(ADVERSARIAL_SET)
    forms = [r["id"].split("-")[0] for r in records]
    assert len(records) >= 500 and {r["lang"] for r in records} == {"zh", "en"}
    assert forms.count("obf") * 2 >= len(records), "at least half are obfuscated spellings"
    looks = [r for r in records if r["id"].startswith("look-")]
    assert len(looks) >= 150 and all(r["lookalikes"] and not r["pii"] for r in looks)
    assert not {r["text"] for r in records} & {r["text"] for r in read(TUNING_SET)}


def test_the_check_digits_of_the_planted_ids_follow_their_rules():
    assert spellings.tw_check("A", "12345678") == "9", "A123456789 is the textbook valid Taiwan ID"
    assert spellings.hk_check("A", "123456") == "3", "A123456(3) is the textbook valid Hong Kong ID"
    assert spellings.hk_check("C", "668668") == "9"
    rng = random.Random(3)
    for _ in range(50):
        for valid in (True, False):
            hk = spellings.hk_id(rng, valid=valid).replace("（", "(").replace("）", ")").replace("(", "").rstrip(")")
            letters = hk[:2] if hk[1].isalpha() else hk[:1]
            assert (spellings.hk_check(letters, hk[len(letters):-1]) == hk[-1]) is valid, hk
            tw = spellings.tw_id(rng, valid=valid)
            assert (spellings.tw_check(tw[0], tw[1:9]) == tw[9]) is valid, tw
            # The scrubber's validators, written apart from the generator, agree with it.
            assert hk_id_ok(letters, hk[len(letters):-1], hk[-1]) is valid and tw_id_ok(tw) is valid
    assert ssn_ok("123456789") and not ssn_ok("666123456") and not ssn_ok("123006789") and not ssn_ok("900123456")
    assert nanp_ok("4155550132") and nanp_ok("14155550132") and not nanp_ok("4151550132")
    assert cn_id15_ok("110105491231002") and not cn_id15_ok("110105491331002")


def test_numbers_are_spelled_as_people_write_them():
    rng = random.Random(1)
    assert spellings.zh_number(88) == "八十八" and spellings.zh_number(205) == "二百零五"
    assert spellings.zh_number(1201) == "一千二百零一" and spellings.zh_number(10) == "十"
    assert spellings.spell("13812345678", (3, 4, 4), "zh_yao", rng) == "幺三八幺二三四五六七八"
    assert spellings.spell("13812345678", (3, 4, 4), "dotted", rng) == "138.1234.5678"
    assert spellings.spell("1381", (4,), "fullwidth", rng) == "１３８１"


# -- the spellings ------------------------------------------------------------------------------------

SCRUBBER = Scrubber()


@pytest.mark.parametrize("text, value, placeholder", [
    # digits that are not ASCII
    ("我手机号１３８１２３４５６７８，到了打我", "１３８１２３４５６７８", "<PHONE>"),
    ("call ١٣٨١٢٣٤٥٦٧٨ now", "١٣٨١٢٣٤٥٦٧٨", "<PHONE>"),
    ("电话 ۱۳۸۱۲۳۴۵۶۷۸", "۱۳۸۱۲۳۴۵۶۷۸", "<PHONE>"),
    ("号码𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖", "𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖", "<PHONE>"),
    ("身份证１１０１０５１９４９１２３１００２Ｘ，帮我订票", "１１０１０５１９４９１２３１００２Ｘ", "<ID>"),
    # separators and spacing
    ("号码 138.1234.5678 存一下", "138.1234.5678", "<PHONE>"),
    ("打138/1234/5678", "138/1234/5678", "<PHONE>"),
    ("打 1 3 8 1 2 3 4 5 6 7 8 找我", "1 3 8 1 2 3 4 5 6 7 8", "<PHONE>"),
    ("电话138\u200b1234\u200b5678", "138\u200b1234\u200b5678", "<PHONE>"),
    ("联系 +86.138.1234.5678", "+86.138.1234.5678", "<PHONE>"),
    ("身份证 1101 0519 4912 3100 2X", "1101 0519 4912 3100 2X", "<ID>"),
    ("卡号 6222.0212.3456.7890.128 户名李四", "6222.0212.3456.7890.128", "<CARD>"),
    ("text me 4 1 5 5 5 5 0 1 3 2", "4 1 5 5 5 5 0 1 3 2", "<PHONE>"),
    # numerals and words
    ("电话一三八一二三四五六七八", "一三八一二三四五六七八", "<PHONE>"),
    ("打幺三八幺二三四五六七八", "幺三八幺二三四五六七八", "<PHONE>"),
    ("my number is four one five five five five zero one three two", "four one five five five five zero one three two",
     "<PHONE>"),
    ("验证码是三八四七五六", "三八四七五六", "<SECRET>"),
    ("身份证一一〇一〇五一九四九一二三一〇〇二X", "一一〇一〇五一九四九一二三一〇〇二X", "<ID>"),
    # e-mails
    ("email me at mia.chen at example dot com", "mia.chen at example dot com", "<EMAIL>"),
    ("邮箱 mia[at]example.com", "mia[at]example.com", "<EMAIL>"),
    ("mail mia(at)example(dot)com pls", "mia(at)example(dot)com", "<EMAIL>"),
    ("发我邮箱 mia＠example.com", "mia＠example.com", "<EMAIL>"),
    ("contact: mia @ example.com", "mia @ example.com", "<EMAIL>"),
    ("ｍｉａ＠ｅｘａｍｐｌｅ．ｃｏｍ 是我邮箱", "ｍｉａ＠ｅｘａｍｐｌｅ．ｃｏｍ", "<EMAIL>"),
    ("write to hans@bücher.de", "hans@bücher.de", "<EMAIL>"),
    ("我的邮箱是李明@公司.cn，记得抄送", "李明@公司.cn", "<EMAIL>"),
    ("我邮箱是zhangsan艾特qq点com", "zhangsan艾特qq点com", "<EMAIL>"),
    # Chinese addresses
    ("我家住建国路八十八号，来玩", "建国路八十八号", "<ADDRESS>"),
    ("寄到建国路８８号３栋２单元５０１室", "建国路８８号３栋２单元５０１室", "<ADDRESS>"),
    ("寄到阳光小区3栋2单元501室，谢谢", "阳光小区3栋2单元501室", "<ADDRESS>"),
    ("收货地址：8栋4单元1602室", "8栋4单元1602室", "<ADDRESS>"),
    ("我住在阳光小区，离地铁近", "阳光小区", "<ADDRESS>"),
    ("ship it to ２２１Ｂ Ｂａｋｅｒ Ｓｔｒｅｅｔ", "２２１Ｂ Ｂａｋｅｒ Ｓｔｒｅｅｔ", "<ADDRESS>"),
    # ID kinds
    ("老身份证 110105491231002", "110105491231002", "<ID>"),
    ("my SSN is 123-45-6789", "123-45-6789", "<ID>"),
    ("social security number 123456789", "123456789", "<ID>"),
    ("护照号 E12345678", "E12345678", "<ID>"),
    ("passport no. G12345678 expires 2030", "G12345678", "<ID>"),
    ("香港身份证 A123456(3)", "A123456(3)", "<ID>"),
    ("台湾身份证字号A123456789", "A123456789", "<ID>"),
    ("QQ号 12345678", "12345678", "<ID>"),
    ("扣扣 一二三四五六七八", "一二三四五六七八", "<ID>"),
    ("微信 zhangsan_88", "zhangsan_88", "<ID>"),
    ("wx: lily2024 加我", "lily2024", "<ID>"),
    ("我车是京A12345", "京A12345", "<ID>"),
    ("车牌沪A·D12345", "沪A·D12345", "<ID>"),
    # secrets
    ("密码就是我生日19900307", "19900307", "<SECRET>"),
    ("my password is my birthday 0307", "0307", "<SECRET>"),
    ("密码：ａｂｃ１２３４５", "ａｂｃ１２３４５", "<SECRET>"),
    ("ip 10[.]0[.]12[.]7 别外传", "10[.]0[.]12[.]7", "<IP>"),
])
def test_every_spelling_family_is_replaced_where_it_was_typed(text, value, placeholder):
    scrubbed, findings = SCRUBBER.scrub(text)
    assert scrubbed == text.replace(value, placeholder), (text, findings)
    assert [f.value for f in findings] == [value]


@pytest.mark.parametrize("text", [
    "订单号：２０２３１１０５１２３４５６７８９０", "快递单号ＳＦ１２３４５６７８９０１２３", "二〇二四年三月七日见",
    "这件三千八百元", "一三五上班，二四六休息", "one two three four five, here I come", "升级到ｖ１.２.３了",
    "时间戳１７００００００００", "12 + 34 = 46", "138 × 1234 = 170292", "建国路上堵车了", "我们小区停电了",
    "QQ音乐会员到期了", "微信支付38元", "护照过期了", "京A开头的车", "see you at noon",
    "it's available at amazon dot com",
    "zoom id 912 345 6789", "会议号 812 3456 7890", "1990年出生", "十一号出发", "地铁十号线", "八十八号选手",
    "not valid: 000-12-3456", "A123456(5) 校验位不对", "型号E12345678", "评分 4.5, 4.6, 4.8, 4.9",
    "I'm at home dot dot dot", "十二点半见", "两万五一个月", "比分三比一", "第一二三名都有奖",
    "WeChat Pay 3.2.1 is out", "小明艾特了我，三点见", "一点点就好",
])
def test_look_alikes_in_the_same_spellings_are_left_alone(text):
    assert SCRUBBER.scrub(text) == (text, [])


def test_the_adversarial_set_meets_the_targets():
    result = evaluate_scrubber(ADVERSARIAL_SET)
    print("\n" + format_result(result))
    assert result["planted"] >= 450 and result["lookalikes"] >= 150
    assert result["recall"] >= TARGET_RECALL, result["misses"][:10]
    assert result["precision"] >= TARGET_PRECISION, result["false_positives"][:10]
    for kind, row in result["per_type"].items():
        if row["planted"] >= 20:
            assert row["recall"] >= TARGET_RECALL and row["precision"] >= TARGET_PRECISION, (kind, row)


# -- offsets ------------------------------------------------------------------------------------------

_STYLES = st.sampled_from(spellings.STYLES)
_NOISE = st.lists(st.sampled_from([*"abcXYZ019 .-:@/，。号路", "密码是", "电话", "at", " dot ", "一", "三个", "v1.2",
                                   "２０２４年", "１", "\u200b", "one ", "<PHONE>"]), max_size=12).map("".join)


@st.composite
def _spelled_value(draw) -> tuple[str, str]:
    """(digits, spelling) of a valid CN mobile, CN ID or card number."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    make, groups = draw(st.sampled_from([(spellings.cn_mobile_digits, (3, 4, 4)), (spellings.cn_id18, (6, 8, 4)),
                                         (spellings.card_digits, (4, 4, 4, 4, 4))]))
    digits = make(rng)
    return digits, spellings.spell(digits, groups, draw(_STYLES), rng)


@settings(max_examples=300, deadline=None)
@given(_NOISE, _spelled_value(), _NOISE)
def test_a_spelled_value_is_replaced_on_its_own_span_and_nowhere_else(before, planted, after):
    digits, value = planted
    text = f"{before} {value} {after}"
    scrubbed, findings = SCRUBBER.scrub(text)
    # Each finding is the original text of its span, and the text between findings is unchanged.
    cursor, kept = 0, []
    for finding in findings:
        assert text[finding.start:finding.end] == finding.value
        kept.append(text[cursor:finding.start])
        cursor = finding.end
    kept.append(text[cursor:])
    assert re.fullmatch(PLACEHOLDER.pattern.join(re.escape(piece) for piece in kept), scrubbed), (text, scrubbed)
    # No digit run of the scrubbed text, normalized, holds the value's digits.
    runs = re.findall(r"[0-9Xx]+", re.sub(r"[\s.\-/_·,]", "", normalize(scrubbed).text))
    assert not any(digits.rstrip("X") in run for run in runs), (text, scrubbed)
    assert SCRUBBER.scrub(scrubbed)[0] == scrubbed


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_NOISE, _spelled_value().map(lambda planted: planted[1])), max_size=5),
       st.sampled_from(["", " ", "\n\n", "，"]))
def test_scrubbing_scrubbed_text_finds_nothing_new_even_when_values_are_glued(pieces, glue):
    once = SCRUBBER.scrub(glue.join(pieces))[0]
    assert SCRUBBER.scrub(once) == (once, [])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | _NOISE)
def test_normalized_text_maps_back_onto_the_original(text):
    norm = normalize(text)
    spans = [norm.span(index, index + 1) for index in range(len(norm.text))]
    assert all(0 <= start < end <= len(text) for start, end in spans)
    assert spans == sorted(spans), "the map back keeps the order of the text"
    if norm.text:
        assert norm.span(0, len(norm.text)) == (spans[0][0], spans[-1][1])
    findings = SCRUBBER.find(text)
    for finding in findings:
        assert text[finding.start:finding.end] == finding.value
    assert all(a.end <= b.start for a, b in itertools.pairwise(findings)), "by position, never overlapping"


# -- the owner's own values ---------------------------------------------------------------------------

OWN = ("5550132", "张三丰", "幸福路12弄", "Lily Chen", "110105194912310021", "mia.chen@example.com")


@pytest.mark.parametrize("text, value", [
    ("我的号码是 ５５５ ０１３２", "５５５ ０１３２"),
    ("打五五五零一三二", "五五五零一三二"),
    ("call five five five oh one three two", "five five five oh one three two"),
    ("555-0132 is my line", "555-0132"),
    ("别跟张 三 丰说", "张 三 丰"),
    ("ask LILY CHEN tomorrow", "LILY CHEN"),
    ("住在幸福路十二弄", "幸福路十二弄"),
    ("身份证 １１０１０５ １９４９１２３１ ００２１", "１１０１０５ １９４９１２３１ ００２１"),
    ("找 mia dot chen 艾特 example 点 com", "mia dot chen 艾特 example 点 com"),
])
def test_the_owners_values_are_found_in_any_spelling(text, value):
    scrubbed, findings = Scrubber(private_values=OWN).scrub(text)
    assert scrubbed == text.replace(value, "<PRIVATE>")
    assert [(f.type, f.value) for f in findings] == [("PRIVATE", value)]


def test_the_owners_values_are_whole_words_and_need_a_length():
    scrubber = Scrubber(private_values=(*OWN, "A", "12", "Al"))
    assert scrubber.private.skipped == ("A", "12", "Al")
    assert scrubber.find("Lilyana Chen") == []
    assert Scrubber().find("张三丰") == [], "no values, no PRIVATE"


def test_the_values_file_has_comments_and_a_missing_one_is_a_config_error(tmp_path):
    from doppel.errors import ConfigError
    from doppel.pii.private import load_private_values

    values = tmp_path / "private.txt"
    values.write_text("# my numbers\n13812345678\n\n  建国路88号3栋  \n# people\n张三丰\n", encoding="utf-8")
    assert load_private_values(values) == ("13812345678", "建国路88号3栋", "张三丰")
    assert load_private_values("") == ()
    with pytest.raises(ConfigError, match=r"privacy\.private_values = .*cannot read it"):
        load_private_values(tmp_path / "missing.txt")


def test_the_build_removes_the_owners_values(tmp_path):
    from data_helpers import Chat

    from doppel.config import settings_from_dict
    from training.dataset.build import BuildOptions, build_dataset

    values = tmp_path / "private.txt"
    values.write_text("# mine\n5550132\n张三丰\n", encoding="utf-8")
    settings = settings_from_dict({"privacy": {"private_values": str(values)}})
    options = BuildOptions.from_settings(settings.data, settings.privacy)
    assert options.private_values == str(values)
    dm = Chat("dm", name="Ann")
    messages = [dm.say("Ann", "你座机多少"), dm.say("Mia", "５５５ ０１３２"), dm.say("Ann", "张三丰呢"),
                dm.say("Mia", "别提张 三 丰"), dm.say("Mia", "打五五五零一三二也行")]
    result = build_dataset(messages, tmp_path / "out", options)
    written = result.samples_path.read_text(encoding="utf-8")
    assert "<PRIVATE>" in written and "张" not in written and "555" not in written and "五五五" not in written
    assert "5550132" not in result.report_path.read_text(encoding="utf-8")
