"""Scrubbing of personal information in Chinese and English text.

Kinds and what counts as one (each replaced by a placeholder and counted per source and kind):

* ``resident_id``: an 18-character PRC resident ID number - 6-digit area code, a real birth date
  (YYYYMMDD, 1800-2099), 3-digit sequence, and a check character that matches the ISO 7064
  MOD 11-2 checksum (weights 7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2; remainder -> "10X98765432").
  An 18-digit run whose checksum fails is NOT an ID (order numbers look like that): it is kept
  and counted as ``unverified_id`` unless ``scrub_invalid_ids`` is set.
* ``phone``: Chinese mobiles (1[3-9]x, 11 digits, optional +86/0086, spaces or dashes between
  the 3-4-4 groups), Chinese landlines (0 + 2-3 digit area code + 7-8 digits, optional
  parentheses), and North-American / international numbers written with separators
  (``(555) 123-4567``, ``+44 20 7946 0958``). Bare digit runs without separators are not phones.
* ``email``, ``url`` (http://, https:// or www.; trailing punctuation is left outside).
* ``name``: the name after a cue - 我叫 / 我的名字是 / 患者姓名： / 姓名： / 病人姓名 and English
  "my name is", "I am called", "patient name:", "full name:", and a bare "name:" that no other
  word precedes ("Drug name: Azithromycin" is no person). Chinese names are 2-4 Han characters ending at
  punctuation or a common following word (今年, 是, 男 ...), otherwise 3 characters (privacy first);
  after the weak cue 我叫 the first character must be a common surname ("我叫了救护车" is no name).
  English names are 1-3 capitalised words.
* ``address``: text after 住址： / 地址： up to punctuation; after 家住 / 住在 up to punctuation or a
  word that goes on with the patient's story (最近, 咳嗽 ...), unless it is a clinical place (住在ICU,
  住在养老院, 住在呼吸科病房: kept, counted as ``clinical_place_kept``; word lists in
  ``pii_places.yaml``); Chinese street numbers (中山路12号), and English street addresses (221
  Baker Street).

Detection is regular-expression based: it finds what these rules describe and nothing else (no
named-entity model). The counts in the build report say how much each rule found per source.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal

from pydantic import Field

from data_recipes.records import Record
from data_recipes.transforms.pii_places import address_part
from data_recipes.transforms.speakers import Drop
from medalign.config import StrictModel

PiiKind = Literal["phone", "resident_id", "email", "url", "name", "address"]
ALL_KINDS: tuple[str, ...] = ("phone", "resident_id", "email", "url", "name", "address")
PLACEHOLDERS = {"phone": "<PHONE>", "resident_id": "<ID>", "email": "<EMAIL>", "url": "<URL>",
                "name": "<NAME>", "address": "<ADDRESS>"}

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# Common Chinese surnames (the ~120 most frequent cover ~90% of the population); only used to
# reject the weak cue 我叫 followed by a non-name ("我叫了", "我叫救护车").
_SURNAMES = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
    "常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴"
    "霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑"
    "景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_HAN = r"\u4e00-\u9fff"
_NAME_END = r"(?=[^" + _HAN + r"]|$|今年|今天|现在|目前|最近|男|女|是|的|在|住|来自|有|从|已|，)"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_URL = re.compile(r"(?:https?://|www\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_NUMBERS = re.compile("|".join([
    r"(?<![0-9A-Za-z])(?P<rid>[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx])(?![0-9A-Za-z])",
    r"(?<![\d+])(?P<phone>(?:(?:\+|00)86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}"
    r"|\(0\d{2,3}\)\s?\d{7,8}|0\d{2,3}[\s-]?\d{7,8}"
    r"|(?:\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}"
    r"|\+\d{1,3}[\s.-]\d{1,4}(?:[\s.-]\d{2,4}){2,3})(?!\d)",
    r"(?P<enstreet>\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way)\b)",
]))
# a street name is 2-4 Han characters, not counting words that precede a place ("我在", "住在")
_ZH_STREET = re.compile(r"(?:(?![在住于到去我是的家从往])[" + _HAN + r"]){2,4}(?:路|街|大道|巷|弄)\d{1,5}号(?:\d{1,4}(?:栋|幢|单元|室|楼))*")
# names after a cue: the cue stays, the name goes
_NAMES = re.compile(
    r"(?P<zhcue>我叫|我的名字(?:是|叫)|(?:患者|病人|本人)?姓名\s*[：:]?\s*|患者名字\s*[：:]?\s*)"
    r"(?P<zhname>[" + _HAN + r"·]{2,4}?" + _NAME_END + r"|[" + _HAN + r"]{3})"
    r"|(?P<encue>(?i:my name is|i am called|i'm called|patient(?:'s)? name\s*(?:is|:)|full name\s*:"
    r"|(?<![A-Za-z] )(?<![A-Za-z])name\s*:)\s*)"
    r"(?P<enname>[A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+){0,2})"
)
_ADDRESS_CUE = re.compile(r"(?P<addrcue>(?:家庭)?住址\s*[：:]\s*|地址\s*[：:]\s*|家住在?|住在)(?P<addr>[^，。,.;；！!？?\s、]{2,40})")
# One character that every rule needs (its cue's first character, "@", "h"ttp, "w"ww, a digit):
# text without any of them has no PII by these rules. Used on non-ASCII text only: English text
# nearly always contains an n or a c, so for it the per-rule tests below are cheaper.
_MAYBE_PII = re.compile(r"[0-9@叫名姓住地hwnNc]")
_THREE_DIGITS = re.compile(r"[0-9][0-9][0-9]")  # [0-9] x3: 4x faster than \d{3} on CJK text
_DIGIT = re.compile(r"[0-9]")


def resident_id_checksum_ok(number: str) -> bool:
    """True when the 18th character of a PRC resident ID matches the MOD 11-2 checksum."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == number[17].upper()


class ScrubPii(StrictModel):
    """Replace personal information with placeholders (<PHONE>, <ID>, <EMAIL>, <URL>, <NAME>, <ADDRESS>)."""

    name: Literal["scrub_pii"] = "scrub_pii"
    kinds: list[PiiKind] = Field(default_factory=lambda: list(ALL_KINDS), description="which kinds to scrub")
    scrub_invalid_ids: bool = Field(False, description="also scrub 18-digit numbers whose resident-ID checksum fails")


def scrub_text(text: str, kinds: frozenset[str], counts: Counter, scrub_invalid_ids: bool = False) -> str:
    """``text`` with every enabled kind replaced by its placeholder; found spans added to counts.

    Rules run one after another (e-mail, URL, numbers, street numbers, names, address cues),
    each only when a cheap substring test says it could match, so clean text costs < 1 us.
    """
    ascii_text = text.isascii()          # O(1); Chinese cues cannot occur in ASCII text
    if not ascii_text and not _MAYBE_PII.search(text):
        return text

    def sub(pattern: re.Pattern, kind: str) -> str:
        return pattern.sub(lambda m: _placeholder(kind, m.group(0), kinds, counts), text)

    if "@" in text:
        text = sub(_EMAIL, "email")
    if "http" in text or "www." in text:
        text = _URL.sub(lambda m: _url(m, kinds, counts), text)
    if _THREE_DIGITS.search(text):
        text = _NUMBERS.sub(lambda m: _number(m, kinds, counts, scrub_invalid_ids), text)
    if ("name" in text or "Name" in text or "NAME" in text or "called" in text
            or not ascii_text and ("叫" in text or "名字" in text or "姓名" in text)):
        text = _NAMES.sub(lambda m: _name(m, kinds, counts), text)
    if ascii_text:
        return text
    if "住" in text or "地址" in text:
        text = _ADDRESS_CUE.sub(lambda m: _address(m, kinds, counts), text)
    if ("路" in text or "街" in text or "巷" in text or "弄" in text) and _DIGIT.search(text):
        text = sub(_ZH_STREET, "address")
    return text


def _url(m: re.Match, kinds: frozenset[str], counts: Counter) -> str:
    url = m.group(0)
    core = url.rstrip(".,;:!?)]'\"")
    return _placeholder("url", core, kinds, counts) + url[len(core):]


def _number(m: re.Match, kinds: frozenset[str], counts: Counter, scrub_invalid_ids: bool) -> str:
    if m.lastgroup == "rid":
        number = m.group("rid")
        if not resident_id_checksum_ok(number):
            counts["unverified_id"] += 1
            if not scrub_invalid_ids:
                return number
        return _placeholder("resident_id", number, kinds, counts)
    kind = "address" if m.lastgroup == "enstreet" else "phone"
    return _placeholder(kind, m.group(0), kinds, counts)


def _address(m: re.Match, kinds: frozenset[str], counts: Counter) -> str:
    """The cue and the address after it; after 住在 / 家住 the address ends before the patient's
    story goes on, and a clinical place (a ward, an ICU, a nursing home) is kept and counted as
    ``clinical_place_kept`` (word lists: pii_places.yaml)."""
    cue, place = m.group("addrcue"), m.group("addr")
    if "住址" in cue or "地址" in cue:
        return cue + _placeholder("address", place, kinds, counts)
    address = address_part(place)
    if address is None:
        counts["clinical_place_kept"] += 1
        return m.group(0)
    return cue + _placeholder("address", address, kinds, counts) + place[len(address):]


def _name(m: re.Match, kinds: frozenset[str], counts: Counter) -> str:
    if m.lastgroup == "zhname":
        name = m.group("zhname")
        if m.group("zhcue") == "我叫" and name[0] not in _SURNAMES:
            return m.group(0)
        return m.group("zhcue") + _placeholder("name", name, kinds, counts)
    return m.group("encue") + _placeholder("name", m.group("enname"), kinds, counts)


def _placeholder(kind: str, original: str, kinds: frozenset[str], counts: Counter) -> str:
    if kind not in kinds:
        return original
    counts[kind] += 1
    return PLACEHOLDERS[kind]


def scrub_pii(record: Record, spec: ScrubPii, counts: Counter) -> Record | Drop:
    """Scrub the text of a record that outputs can carry: utterances, documents, responses, references."""
    kinds, maybe = frozenset(spec.kinds), _MAYBE_PII.search
    for turn in record.turns:
        content = turn.content
        if content.isascii() or maybe(content):      # scrub_text's own first test, inlined: most turns stop here
            turn.content = scrub_text(content, kinds, counts, spec.scrub_invalid_ids)
    if record.text is not None:
        record.text = scrub_text(record.text, kinds, counts, spec.scrub_invalid_ids)
    if record.responses:
        record.responses = [scrub_text(r, kinds, counts, spec.scrub_invalid_ids) for r in record.responses]
    # metadata reaches the outputs as a prompt's reference answer (Med-dialog cases) and as a
    # routing case's diagnosis and doctor profile; other metadata (descriptions, consultation
    # URLs) is never written, so it is not scanned
    for key in ("reference", "diagnosis", "doctor_profile"):
        if isinstance(record.meta.get(key), str):
            record.meta[key] = scrub_text(record.meta[key], kinds, counts, spec.scrub_invalid_ids)
    return record
