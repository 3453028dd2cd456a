"""Record transforms and builders on hand-made records; the registry's names equal its functions."""

from __future__ import annotations

from collections import Counter

import pytest

from data_recipes.records import Record, Turn
from data_recipes.transforms import BUILDERS, RECORD_TRANSFORMS, Drop, apply_transforms, builders
from data_recipes.transforms.filters import FilterLanguage, FilterLength, filter_language, filter_length
from data_recipes.transforms.speakers import (
    DropClosingCourtesies,
    MergeConsecutiveSpeakers,
    NormalizeRoles,
    drop_closing_courtesies,
    merge_consecutive_speakers,
    normalize_roles,
)


def dialogue(*turns: tuple[str, str], **kw) -> Record:
    return Record(id=kw.pop("id", "c1"), kind=kw.pop("kind", "dialogue"),
                  turns=[Turn(r, c) for r, c in turns], **kw)


def roles(record: Record) -> list[str]:
    return [t.role for t in record.turns]


def test_registry_names_equal_function_names():
    for name, (fn, spec) in RECORD_TRANSFORMS.items():
        assert fn.__name__ == name
        assert spec.model_fields["name"].default == name
    for output, table in BUILDERS.items():
        for name, fn in table.items():
            assert fn.__name__ == name, output


def test_merge_consecutive_speakers():
    rec = dialogue(("user", "头痛"), ("user", "还恶心"), ("assistant", "多久了？"), ("assistant", "有发热吗？"),
                   ("user", "三天"))
    counts = Counter()
    out = merge_consecutive_speakers(rec, MergeConsecutiveSpeakers(), counts)
    assert [(t.role, t.content) for t in out.turns] == [
        ("user", "头痛\n还恶心"), ("assistant", "多久了？\n有发热吗？"), ("user", "三天")]
    assert counts["merged_turns"] == 2
    out = merge_consecutive_speakers(dialogue(("user", "a"), ("user", "b")), MergeConsecutiveSpeakers(separator=" "), Counter())
    assert out.turns[0].content == "a b"


def test_normalize_roles_strips_tags_drops_empty_and_leading_assistant():
    rec = dialogue(("assistant", "医生：您好"), ("user", "病人：我头痛"), ("assistant", "  "), ("assistant", "答：多久了？"))
    counts = Counter()
    out = normalize_roles(rec, NormalizeRoles(system_prompt="你是医生。"), counts)
    assert [(t.role, t.content) for t in out.turns] == [
        ("system", "你是医生。"), ("user", "我头痛"), ("assistant", "多久了？")]
    assert counts == Counter({"stripped_tags": 3, "dropped_empty_turns": 1, "dropped_leading_assistant": 1})


def test_normalize_roles_drops_a_dialogue_without_patient():
    out = normalize_roles(dialogue(("assistant", "hello")), NormalizeRoles(), Counter())
    assert isinstance(out, Drop) and "no patient turn" in out.reason


def test_drop_closing_courtesies():
    rec = dialogue(("user", "头痛三天"), ("assistant", "考虑偏头痛，建议神经内科就诊。"), ("user", "好的，我去医院看看"),
                   ("assistant", "嗯，去看看吧"), ("user", "谢谢"))
    counts = Counter()
    out = drop_closing_courtesies(rec, DropClosingCourtesies(), counts)
    assert [t.content for t in out.turns] == ["头痛三天", "考虑偏头痛，建议神经内科就诊。"]
    assert counts["dropped_closing_turns"] == 3
    en = dialogue(("user", "I have a rash"), ("assistant", "Likely eczema."), ("user", "Thanks!"), ("assistant", "You're welcome."))
    assert [t.content for t in drop_closing_courtesies(en, DropClosingCourtesies(), Counter()).turns] == [
        "I have a rash", "Likely eczema."]
    # a long patient message or a substantive doctor reply is not a courtesy; one reply always stays
    keep = dialogue(("user", "头痛"), ("assistant", "多久了？"), ("user", "好的，已经三天了，而且越来越重，晚上睡不着"))
    assert len(drop_closing_courtesies(keep, DropClosingCourtesies(), Counter()).turns) == 3
    only = dialogue(("user", "谢谢"), ("assistant", "不客气"))
    assert len(drop_closing_courtesies(only, DropClosingCourtesies(), Counter()).turns) == 2


def test_filter_length_reasons():
    ok = dialogue(("user", "头痛三天"), ("assistant", "考虑偏头痛"))
    assert filter_length(ok, FilterLength(min_chars=2, max_chars=10), Counter()) is ok
    assert "shorter" in filter_length(ok, FilterLength(min_chars=5), Counter()).reason
    assert "longer than max_chars" in filter_length(ok, FilterLength(max_chars=4), Counter()).reason
    assert "max_total_chars" in filter_length(ok, FilterLength(max_total_chars=8), Counter()).reason
    no_reply = dialogue(("user", "头痛三天"))
    assert "assistant turns" in filter_length(no_reply, FilterLength(min_assistant_turns=1), Counter()).reason
    doc = Record(id="d", kind="text", text="x" * 50)
    assert isinstance(filter_length(doc, FilterLength(max_chars=49), Counter()), Drop)


def test_filter_language_sets_language_and_drops_others():
    zh = dialogue(("user", "医生您好，我头痛三天了"), ("assistant", "考虑偏头痛"))
    en = dialogue(("user", "Doctor, I have had a headache for three days"), ("assistant", "Likely migraine."))
    counts = Counter()
    assert filter_language(zh, FilterLanguage(keep=["zh"]), counts).language == "zh"
    dropped = filter_language(en, FilterLanguage(keep=["zh"]), counts)
    assert isinstance(dropped, Drop) and "language en" in dropped.reason
    assert counts == Counter({"detected_zh": 1, "detected_en": 1})


def test_apply_transforms_reports_which_transform_dropped():
    specs = [MergeConsecutiveSpeakers(), FilterLength(max_chars=3)]
    counters: dict = {}
    name, drop = apply_transforms(dialogue(("user", "a"), ("user", "bcd")), specs, counters)
    assert name == "filter_length" and isinstance(drop, Drop)
    assert counters["merge_consecutive_speakers"]["merged_turns"] == 1


CONSULT = dialogue(("user", "头痛三天"), ("assistant", "有发热吗？"), ("user", "没有"),
                   ("assistant", "考虑偏头痛，建议神经内科就诊。"), ("user", "谢谢"),
                   meta={"department": "神经内科"}, language="zh")


def test_per_turn_examples_history_plus_latest_patient_utterance():
    rows = builders.per_turn_examples(CONSULT)
    assert [r["suffix"] for r in rows] == ["t0", "t1"]
    assert [m["content"] for m in rows[0]["messages"]] == ["头痛三天", "有发热吗？"]
    assert [m["role"] for m in rows[1]["messages"]] == ["user", "assistant", "user", "assistant"]
    assert rows[1]["messages"][-1]["content"] == "考虑偏头痛，建议神经内科就诊。"


def test_whole_conversation_ends_at_last_doctor_turn():
    (row,) = builders.whole_conversation(CONSULT)
    assert len(row["messages"]) == 4 and row["messages"][-1]["role"] == "assistant"
    assert builders.whole_conversation(dialogue(("user", "hi"))) == []


def test_department_routing_from_metadata():
    (row,) = builders.department_routing(CONSULT)
    assert row["messages"][0]["content"].startswith("头痛三天\n\n")
    assert row["messages"][1]["content"] == "建议到神经内科就诊。"
    assert builders.department_routing(dialogue(("user", "x"), ("assistant", "y"))) == []


def test_prompt_builders_give_references():
    final = builders.final_turn_prompt(CONSULT)
    # the dialogue ends with the patient: the open question is the prompt, without a reference
    assert final[0]["reference"] is None and final[0]["messages"][-1]["content"] == "谢谢"
    closed = dialogue(*[(t.role, t.content) for t in CONSULT.turns[:4]], meta={"department": "神经内科"})
    (row,) = builders.final_turn_prompt(closed)
    assert row["messages"][-1] == {"role": "user", "content": "没有"}
    assert row["reference"] == "考虑偏头痛，建议神经内科就诊。" and row["department"] == "神经内科"
    (first,) = builders.first_turn_prompt(closed)
    assert first["messages"] == [{"role": "user", "content": "头痛三天"}] and first["reference"] == "有发热吗？"
    assert [r["reference"] for r in builders.per_turn_prompts(CONSULT)] == ["有发热吗？", "考虑偏头痛，建议神经内科就诊。", None]


def test_reward_builders_adjacent_pairs_and_ties():
    ranked = Record(id="r", kind="ranked", turns=[Turn("user", "q")], responses=["d", "g4", "g35", "w"],
                    ranks=[0, 1, 1, 2], response_sources=["doctor", "gpt-4", "gpt-3.5", "weak"])
    pairs = builders.preference_pairs(ranked)
    # the tie between g4 and g35 gives no pair
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("d", "g4"), ("g35", "w")]
    (tup,) = builders.ranked_tuples(ranked)
    assert tup["ranks"] == [0, 1, 1, 2] and tup["response_sources"][0] == "doctor"
    pref = Record(id="p", kind="preference", turns=[Turn("user", "q")], responses=["good", "bad"], ranks=[0, 1])
    assert [(p["chosen"], p["rejected"]) for p in builders.preference_pairs(pref)] == [("good", "bad")]
    assert builders.final_turn_prompt(pref)[0]["reference"] == "good"


def test_pretrain_text():
    assert builders.pretrain_text(Record(id="d", kind="text", text="文档"))[0]["text"] == "文档"
    (row,) = builders.pretrain_text(dialogue(("user", "a"), ("assistant", "b"), language="zh"))
    assert row["text"] == "病人：a\n医生：b"


@pytest.mark.parametrize("name", sorted(RECORD_TRANSFORMS))
def test_every_transform_accepts_every_record_kind(name):
    fn, spec_cls = RECORD_TRANSFORMS[name]
    spec = spec_cls(keep=["zh", "en", "other"]) if name == "filter_language" else spec_cls()
    records = [dialogue(("user", "我头痛"), ("assistant", "多久了")), Record(id="t", kind="text", text="文档内容"),
               Record(id="p", kind="preference", turns=[Turn("user", "q")], responses=["a", "b"], ranks=[0, 1])]
    for record in records:
        out = fn(record, spec, Counter())
        assert isinstance(out, (Record, Drop))
