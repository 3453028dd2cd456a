"""PII scrubbing: each kind in Chinese and English, resident-ID checksums, counts, no false hits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from data_recipes.records import Record, Turn
from data_recipes.transforms.pii import ALL_KINDS, ScrubPii, resident_id_checksum_ok, scrub_pii, scrub_text

KINDS = frozenset(ALL_KINDS)
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def with_checksum(first17: str) -> str:
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, WEIGHTS)) % 11]


def scrub(text: str, **kw) -> tuple[str, Counter]:
    counts: Counter = Counter()
    return scrub_text(text, kw.pop("kinds", KINDS), counts, **kw), counts


def test_resident_id_checksum_by_hand():
    # 11010519491231002X: the published example ID; weighted sum 167, 167 % 11 = 2 -> "X"
    assert sum(int(d) * w for d, w in zip("11010519491231002", WEIGHTS)) == 167
    assert resident_id_checksum_ok("11010519491231002X")
    assert resident_id_checksum_ok("11010519491231002x")
    assert not resident_id_checksum_ok("110105194912310021")
    assert not resident_id_checksum_ok("1101051949123100")  # too short


def test_valid_resident_id_is_scrubbed_invalid_is_kept_and_counted():
    good = with_checksum("44030619850714123")
    bad = good[:-1] + ("1" if good[-1] != "1" else "2")
    text, counts = scrub(f"身份证号{good}，另一个号码{bad}。")
    assert text == f"身份证号<ID>，另一个号码{bad}。"
    assert counts == Counter({"resident_id": 1, "unverified_id": 1})
    text, counts = scrub(f"号码{bad}", scrub_invalid_ids=True)
    assert text == "号码<ID>" and counts["resident_id"] == 1


def test_id_inside_a_longer_number_is_not_an_id():
    good = with_checksum("44030619850714123")
    text, counts = scrub(f"订单9{good}7")
    assert text == f"订单9{good}7" and not counts


@pytest.mark.parametrize("text, expected", [
    ("电话13812345678", "电话<PHONE>"),
    ("手机 138-1234-5678 ", "手机 <PHONE> "),
    ("+86 139 1234 5678", "<PHONE>"),
    ("座机010-12345678或(0755)87654321", "座机<PHONE>或<PHONE>"),
    ("call (555) 123-4567 now", "call <PHONE> now"),
    ("UK +44 20 7946 0958.", "UK <PHONE>."),
])
def test_phone_numbers(text, expected):
    out, counts = scrub(text)
    assert out == expected
    assert counts["phone"] == expected.count("<PHONE>")


@pytest.mark.parametrize("text", [
    "体温38.5度，血压120/80，心率88次/分", "2023-10-12复查", "吃了3天药，每次2片", "ratio 1-2-3",
    "头痛一周", "I took 200 mg twice", "身高175cm体重70kg",
])
def test_medical_numbers_are_not_pii(text):
    out, counts = scrub(text)
    assert out == text and not counts


def test_email_and_url_keep_surrounding_punctuation():
    out, counts = scrub("Mail me at li.ming@example.com, or see https://example.org/a?b=1. 访问www.abc.cn了解")
    assert out == "Mail me at <EMAIL>, or see <URL>. 访问<URL>了解"
    assert counts == Counter({"email": 1, "url": 2})


@pytest.mark.parametrize("text, expected", [
    ("我叫张三，今年30岁", "我叫<NAME>，今年30岁"),
    ("我叫王小明今年12岁", "我叫<NAME>今年12岁"),
    ("患者姓名：欧阳娜娜，女", "患者姓名：<NAME>，女"),
    ("姓名:李四 男", "姓名:<NAME> 男"),
    ("我的名字是陈静。", "我的名字是<NAME>。"),
    ("My name is John Smith and I have a cough.", "My name is <NAME> and I have a cough."),
    ("Patient name: Mary Jane Watson", "Patient name: <NAME>"),
])
def test_names_after_cue_words(text, expected):
    out, counts = scrub(text)
    assert out == expected and counts["name"] == 1


@pytest.mark.parametrize("text", ["我叫了救护车", "他们叫我多喝水", "my name is not important"])
def test_cue_words_without_a_name(text):
    out, counts = scrub(text)
    assert out == text and not counts


def test_addresses():
    out, counts = scrub("家住北京市朝阳区建国路88号，最近头痛")
    assert out == "家住<ADDRESS>，最近头痛" and counts["address"] == 1
    out, counts = scrub("我在中山路12号3栋上班")
    assert out == "我在<ADDRESS>上班"
    out, counts = scrub("I live at 221 Baker Street and cough at night.")
    assert out == "I live at <ADDRESS> and cough at night." and counts["address"] == 1


def test_only_selected_kinds_are_scrubbed():
    out, counts = scrub("我叫张三，电话13812345678", kinds=frozenset({"phone"}))
    assert out == "我叫张三，电话<PHONE>" and counts == Counter({"phone": 1})


def test_scrub_pii_covers_every_text_field_and_counts_per_kind():
    record = Record(id="1", kind="dialogue",
                    turns=[Turn("user", "我叫张三，电话13812345678"), Turn("assistant", "请发邮件到a@b.com")],
                    responses=["见 http://x.cn"], meta={"reference": "患者姓名：李四", "department": "神经内科"})
    counts: Counter = Counter()
    out = scrub_pii(record, ScrubPii(), counts)
    assert out.turns[0].content == "我叫<NAME>，电话<PHONE>"
    assert out.turns[1].content == "请发邮件到<EMAIL>"
    assert out.responses == ["见 <URL>"]
    assert out.meta == {"reference": "患者姓名：<NAME>", "department": "神经内科"}
    assert counts == Counter({"name": 2, "phone": 1, "email": 1, "url": 1})


_CLINICAL = yaml.safe_load((Path(__file__).parent / "fixtures" / "pii" / "clinical_text.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("text", _CLINICAL["keep"])
def test_clinical_context_lab_values_and_drug_names_are_not_pii(text):
    out, counts = scrub(text)
    assert out == text
    assert not {k: v for k, v in counts.items() if k != "clinical_place_kept"}


@pytest.mark.parametrize("text, expected", _CLINICAL["scrub"])
def test_addresses_names_and_phones_in_clinical_text_are_scrubbed(text, expected):
    assert scrub(text)[0] == expected


def test_a_clinical_place_is_counted_as_kept():
    out, counts = scrub("奶奶住在养老院，最近咳嗽。")
    assert out == "奶奶住在养老院，最近咳嗽。" and counts == Counter({"clinical_place_kept": 1})
