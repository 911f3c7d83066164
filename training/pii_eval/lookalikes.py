"""Look-alikes for the adversarial evaluation set (``training.pii_eval.adversarial``): text that a
scrubber which normalizes digits, collapses separators and reads number words could take for a
private value, and must leave alone.

Order and tracking numbers (full-width, in groups), dates and times in full-width digits and in
Chinese numerals, prices in words, versions, timestamps, arithmetic, counting in Chinese and
English, years, street talk without a door number, estates without a name, QQ/WeChat/passport/
licence-plate talk without a value, "at ... dot com" websites, meeting IDs, stock codes, train and
bus numbers, IDs with a wrong check digit, SSN-shaped numbers outside the issued ranges, and a
passport-shaped product code with no passport in sight.

Tested through the set in ``tests/doppel/test_pii_spellings.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from types import MappingProxyType

from training.pii_eval.fakes import digits
from training.pii_eval.spellings import fullwidth, hk_id, spell, tw_id, zh_number

Gen = Callable[[random.Random], str]


def _pick(*choices: str) -> Gen:
    return lambda rng: rng.choice(choices)


def _zh_date(rng: random.Random) -> str:
    y, m, d = rng.randint(1985, 2026), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice((f"{spell(str(y), (4,), 'zh', rng)}年{zh_number(m)}月{zh_number(d)}日",
                       f"{zh_number(m)}月{zh_number(d)}号", f"{spell(str(y), (4,), 'zh', rng)}年"))


def _fw_date(rng: random.Random) -> str:
    y, m, d = rng.randint(1985, 2026), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice((fullwidth(f"{y}年{m}月{d}日"), fullwidth(f"{y}-{m:02d}-{d:02d}"), f"{y}.{m:02d}.{d:02d}",
                       f"{d:02d}/{m:02d}/{y}", fullwidth(f"{y}/{m}/{d}"), f"{y} {m:02d} {d:02d}",
                       spell(f"{y}{m:02d}{d:02d}", (4, 2, 2), "arabic", rng)))


def _order(rng: random.Random) -> str:
    number = rng.choice("123456789") + digits(rng, rng.choice((11, 13, 15, 17, 18)))
    style = rng.randrange(4)
    if style == 0:
        return fullwidth(number)
    if style == 1:
        return " ".join(number[i:i + 4] for i in range(0, len(number), 4))
    if style == 2:
        return "-".join(number[i:i + 6] for i in range(0, len(number), 6))
    return number


def _tracking(rng: random.Random) -> str:
    return rng.choice((f"SF {digits(rng, 4)} {digits(rng, 4)} {digits(rng, 4)} {digits(rng, 1)}",
                       fullwidth(f"YT{digits(rng, 13)}"), f"JD00{digits(rng, 11)}", f"75{digits(rng, 12)}",
                       fullwidth(f"SF{digits(rng, 12)}"),
                       f"1Z 999 AA1 {digits(rng, 2)} {digits(rng, 4)} {digits(rng, 3)}"))


def _price(rng: random.Random) -> str:
    return rng.choice((f"{zh_number(rng.randint(2, 9) * 1000 + rng.randint(1, 9) * 100)}元",
                       fullwidth(f"¥{rng.randint(10, 9999)}"), f"{zh_number(rng.randint(11, 199))}块",
                       f"$ {rng.randint(1, 9)},{digits(rng, 3)}.{digits(rng, 2)}",
                       f"{zh_number(rng.randint(2, 9))}块{zh_number(rng.randint(1, 9))}",
                       f"两万{zh_number(rng.randint(1, 9))}", fullwidth(f"{rng.randint(1, 999)}.{digits(rng, 2)}元"),
                       f"{rng.randint(1, 99)} dollars and {rng.randint(1, 99)} cents"))


def _version(rng: random.Random) -> str:
    return rng.choice((fullwidth(f"v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}"),
                       f"{rng.randint(1, 3)}.{rng.randint(0, 12)}.{rng.randint(0, 20)}",
                       f"10.0.{rng.randint(19041, 22631)}.{rng.randint(1000, 4000)}",
                       fullwidth(f"{rng.randint(1, 3)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}"),
                       f"17.{rng.randint(0, 6)}.{rng.randint(0, 3)}",
                       f"v{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 99)}"))


def _timestamp(rng: random.Random) -> str:
    value = str(rng.randint(1_500_000_000, 1_800_000_000) * rng.choice((1, 1000)))
    return fullwidth(value) if rng.random() < 0.5 else value


def _math(rng: random.Random) -> str:
    a, b = rng.randint(10, 9999), rng.randint(10, 9999)
    return rng.choice((f"{a} + {b} = {a + b}", f"{a} × {b} = {a * b}", fullwidth(f"{a}+{b}={a + b}"),
                       f"{a} * {b} = {a * b}", f"{a * b} / {b} = {a}", f"({a} - {b}) * 2 = {(a - b) * 2}",
                       f"{zh_number(a % 100)}加{zh_number(b % 100)}等于{zh_number(a % 100 + b % 100)}",
                       f"2^{rng.randint(10, 40)}", f"{a}.{digits(rng, 2)} x {b}"))


def _counting_zh(rng: random.Random) -> str:
    return rng.choice(("一二三四五六七，开始！", "一三五上班，二四六休息", "三四个人就够了", "来了七八十个人",
                       "一二一，一二一", "排第一二三名的都有奖", "一个两个三个四个五个", "五六七八九十，数完了",
                       "零零后和九零后", "一九二二年的老房子", "十一点半", "三十六计走为上"))


def _counting_en(rng: random.Random) -> str:
    return rng.choice(("one two three four five, here I come", "five six seven eight, everybody",
                       "one, two, three, go!",
                       "it's one of those days", "two or three of us", "one two three four five six seven",
                       "seven eight nine ten, do it again", "the top three of the nine teams",
                       "zero to one hundred in four seconds", "one for all, all for one"))


def _year(rng: random.Random) -> str:
    y = rng.randint(1950, 2026)
    return rng.choice((f"{y}年", f"{spell(str(y), (4,), 'zh', rng)}年", f"born in {y}", fullwidth(f"{y}年"),
                       f"class of {y}", f"{y}-{y + 1} season"))


LOOKALIKES: MappingProxyType[str, Gen] = MappingProxyType({
    "order": _order, "tracking": _tracking, "date_zh": _zh_date, "date_fw": _fw_date,
    "datetime": lambda r: fullwidth(f"{r.randint(2015, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} "
                                    f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"),
    "time": lambda r: r.choice((f"{zh_number(r.randint(1, 12))}点半",
                                fullwidth(f"{r.randint(0, 23)}:{r.randint(0, 59):02d}"),
                                f"下午{zh_number(r.randint(1, 6))}点{zh_number(r.randint(10, 59))}",
                                f"{r.randint(1, 12)} . {r.randint(10, 59)} pm")),
    "price": _price, "version": _version, "timestamp": _timestamp, "math": _math,
    "counting_zh": _counting_zh, "counting_en": _counting_en, "year": _year,
    "street_zh": _pick("建国路上堵死了", "中山路口见", "人民路那家火锅还开着", "走解放大街比较快", "在长江路附近下车",
                       "淮海中路的梧桐树黄了", "深南大道一到晚上就堵", "学院路有好多小吃"),
    "street_en": _pick("Main Street is closed today", "traffic on 5th Avenue is awful", "we walked down Baker Street",
                       "the shops on High Street close at 6", "Sunset Blvd at night",
                       "lunch somewhere on Market Street"),
    "estate_talk": _pick("我们小区停电了", "小区门口新开了家店", "这个小区房价涨了", "隔壁小区在装修",
                         "小区里的猫又胖了", "老小区没有电梯"),
    "qq_talk": _pick("QQ音乐会员到期了", "qq空间里看到了", "QQ群里说了", "企鹅馆门票120元", "QQ 8 点上线",
                     "扣扣子掉了一颗", "QQ飞车v2.3更新了", "QQ号被盗了好烦"),
    "wx_talk": _pick("微信支付38元", "微信上说吧", "vx聊", "加我微信", "wx小程序v2.1", "微信号就是手机号",
                     "WeChat Pay 3.2.1 is out", "微信运动今天走了12000步"),
    "passport_talk": _pick("护照过期了", "passport photo is 2 inch", "护照办了15个工作日",
                           "my passport expires in 2027", "护照页数不够了"),
    "plate_talk": _pick("京A开头的车", "沪牌拍了8万", "A股涨了3%", "G1234次列车", "粤B的车今天限行",
                        "车牌尾号3和8限行"),
    "ssn_talk": _pick("my SSN is on the form", "SSN verification takes 3-5 days",
                      "never text your social security number"),
    "at_talk": _pick("see you at noon", "I'm at home dot dot dot", "it's available at amazon dot com",
                     "look it up at google dot com", "we met at school", "at 5 dot 30 we leave",
                     "he works at microsoft dot", "arrived at gate 12"),
    "meeting": lambda r: r.choice((f"会议号 {digits(r, 3)} {digits(r, 3)} {digits(r, 3)}",
                                   f"腾讯会议 {digits(r, 3)}-{digits(r, 3)}-{digits(r, 3)}",
                                   f"meeting ID {r.randint(2, 9)}{digits(r, 2)} {digits(r, 4)} {digits(r, 4)}",
                                   f"zoom id {r.randint(2, 9)}{digits(r, 2)} {digits(r, 3)} {digits(r, 4)}")),
    "stock": lambda r: r.choice((f"沪市{r.choice(('600', '601', '603'))}{digits(r, 3)}",
                                 f"股票代码 {fullwidth('000' + digits(r, 3))}",
                                 f"{r.choice(('600519', '000858', '300750'))}又涨了")),
    "train": lambda r: r.choice((f"G{r.randint(1, 9999)}", f"D{r.randint(1, 999)}次",
                                 f"flight CA{r.randint(100, 9999)}",
                                 f"坐{r.randint(1, 999)}路公交", f"{zh_number(r.randint(1, 99))}路车")),
    "hk_wrong": lambda r: hk_id(r, valid=False),
    "tw_wrong": lambda r: tw_id(r, valid=False),
    "ssn_invalid": lambda r: r.choice((f"000-{r.randint(10, 99)}-{digits(r, 4)}",
                                       f"666-{r.randint(10, 99)}-{digits(r, 4)}",
                                       f"{r.randint(100, 899)}-00-{digits(r, 4)}",
                                       f"9{digits(r, 2)}-{r.randint(10, 99)}-{digits(r, 4)}")),
    "eleven": lambda r: fullwidth(r.choice(("10", "11", "12")) + digits(r, 9)),
    "short": _pick("１００８６", "１２３０６", "95588", "一一零", "幺幺零", "１２０", "10010"),
    "score": _pick("３：２", "2 - 1", "比分三比一", "7-6 (7-5)"),
    "floor": _pick("我住三楼", "电梯到十八楼", "在501开会", "会议室3A", "五楼会议室", "住二十八层"),
    "metro": _pick("地铁十号线", "二号线换乘", "1号线末班车", "坐四号线过来"),
    "day": _pick("十一号出发", "二十号发工资", "八十八号选手", "第三十二号", "十五号见"),
    "percent": _pick("百分之三十", "涨了１２．５％", "打八折", "九五折"),
    "model": lambda r: r.choice((f"型号E{digits(r, 8)}", f"产品编号G{digits(r, 8)}", f"SKU K{digits(r, 8)}",
                                 f"批号 {fullwidth('E' + digits(r, 8))}")),
    "isbn": _pick("ISBN 978-7-02-008551-3", "ISBN ９７８-０-１３-１１０３６２-７"),
})
