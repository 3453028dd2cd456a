"""The rubric's logical-consistency gate: word salad scores low, coherent answers are untouched."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from data_recipes.synthetic.answers import (
    STYLES, compose_answer, compose_brief_distilled, compose_distilled_followup, compose_explainer,
)
from data_recipes.synthetic.world import CONDITIONS, CONDITIONS_BY_KEY
from judges.config import LocalServerOptions
from judges.server.coherence import (
    coherence, dangling_sentences, no_content, numbering_errors, punctuation_artefacts, repetitions,
)
from judges.server.prompt_parse import JudgePrompt
from judges.server.replies import compose
from judges.server.rubric import features, probed_conditions, rate
from judges.server.topic_consistency import (
    off_topic_items, unrelated_conditions, wrong_departments,
)

# What the quickstart's tiny policy wrote after PPO (eval generations), with the doctor's answer.
SALAD = [
    ("您好.   在医生指导下做腰背肌锻炼。\n4.  眼压。\n\n祝您身体健康！如有其他问题，欢迎继续咨询和需要特别"
     "提醒的是. 刷牙。\n\n需要特别提醒的是常见表现包括1.  戒酒。\n2.  保持良好的作息和均衡的饮食。\n\n"
     "祝您身体健康！如有其他问题！如有其他问题！如有其他问题内便的话",
     "考虑急性支气管炎，建议呼吸内科就诊。", "acute_bronchitis"),
    (".  保持心情舒畅科做进一步检查。\n\n日常建议：\n1.    头痛性质突然改变。\n4.   洗澡\ufffd。\n3. 2. "
     "口关节突然红肿。\n\n祝您身体健康！如有其他问题，欢迎继续咨询！。",
     "肺结核可能性大，去感染科看看。", "pulmonary_tuberculosis"),
    ("您好。您目前的情况是日常护理：\n：\n1.  ，避免过度焦虑。\n\n如果症状持续或加重：\n1.  注意臀部护理走路。"
     "\n\n！很理解您现在的担心，根据您描述的情况！很理解您现在的担心热性惊厥。\n\n，如果出现。\n3. "
     "您可以先从以下几个方面做起：\n1. ，不要自行用药。\n\n在此期间。\n2. 您可以先从以下几个方面做起：\n1. "
     "一天内反复抽搐。\n\n：：反复长到。\n.  急性期，每小时起来活动。\n2. 祝您身体健康！如有其他问题1",
     "应该是面神经炎，到神经内科看一下。先闭眼困难时戴眼罩并用人工泪液保护眼睛。", "facial_neuritis"),
    ("您好您好您好   ：\n1.  戒烟流，去科做进一步检查。\n\n\ufffd偏头痛。\n\n典型的起病情况，或者常见表现包括：\n1. "
     "必要时做腰椎磁共振检查。\n2.必要时。\n3.的降压药，我来为您详细分析一下您好！很理解您现在的担心，"
     "根据您描述的情况，根据您描述的情况，我来为您详细分析一下鼻塞。\n3.在此期间，但以下情况需要警惕1. "
     "保持心情舒畅，不要揉眼睛。\n4. 肠易激综合征和体。\n3. ，避免过度焦虑。\n\n，不能替代医生的诊断，祝您早日康复",
     "考虑良性阵发性位置性眩晕，建议神经内科就诊。起床和翻身时动作放慢。", "bppv"),
]


def _coherence(text: str, lang: str, reference: str = ""):
    f, ref = features(text, lang), features(reference, lang)
    topic = frozenset(ref.conditions) or probed_conditions(ref.questions, lang)
    return coherence(text, lang, f.conditions, topic, f.departments)


def word_salad(rng: random.Random, lang: str = "zh") -> str:
    """Salad as a small LM stitches it: clauses of several conditions' answers, shuffled, glued
    with stray list numbers, doubled clauses and broken punctuation."""
    clauses = []
    for cond in rng.sample(CONDITIONS, 3):
        text = compose_answer(cond, lang, rng.choice(("distilled", "hybrid")), rng)
        clauses += [c for c in text.replace("\n", "。").split("。") if c]
    rng.shuffle(clauses)
    picked = clauses[:8]
    picked.insert(rng.randrange(len(picked)), picked[0])           # a clause said twice
    glue = ["。\n", "。\n4.  ", "！", "，", ". ", "：：", "。\n3. 2. ", "。\n\n"]
    return "".join(c + rng.choice(glue) for c in picked).rstrip("。\n ")


def test_salad_scores_far_below_a_short_coherent_answer_and_every_good_style():
    for salad, reference, key in SALAD:
        salad_total = rate(salad, reference, "zh").total
        assert rate(reference, reference, "zh").total - salad_total > 3.0, salad
        cond = CONDITIONS_BY_KEY[key]
        for seed in range(3):
            rng = random.Random(seed)
            for style in ("doctor", "distilled", "hybrid"):
                answer = compose_answer(cond, "zh", style, rng)
                assert rate(answer, reference, "zh").total > salad_total + 1.0, (style, answer)


def test_generated_salad_scores_below_the_good_styles_means(cases):
    means = {s: statistics.mean(rate(c["answers"][s], c["reference"], c["language"]).total
                                for c in cases(40)) for s in STYLES}
    floor = min(means["doctor"], means["distilled"], means["hybrid"])
    rng = random.Random(7)
    refs = [compose_answer(c, "zh", "doctor", rng) for c in CONDITIONS]
    salads = [rate(word_salad(rng), rng.choice(refs), "zh").total for _ in range(60)]
    assert statistics.mean(salads) < floor - 2.5, (statistics.mean(salads), means)
    assert sum(s < floor for s in salads) / len(salads) >= 0.95, sorted(salads)[-5:]


def test_the_gate_multiplies_the_other_criteria():
    salad, reference, _ = SALAD[0]
    r = rate(salad, reference, "zh")
    assert r.coherence.score < 0.2 and r.helpfulness > 0.3   # advice-like phrases, no sense
    weighted = 0.45 * r.accuracy + 0.2 * r.doctor + 0.2 * r.helpfulness + 0.15 * r.conciseness
    gate = 0.25 + 0.75 * r.accuracy                             # the accuracy gate (issue 10)
    assert r.total == pytest.approx(1 + 9 * r.coherence.score * gate * weighted)


def test_no_fault_in_any_text_the_generator_writes():
    """The four styles (and the corpus's other distilled texts) are coherent: the gate leaves the
    HuatuoGPT thesis exactly as it was."""
    for cond in CONDITIONS:
        for lang in ("zh", "en"):
            for ask in (False, True):
                rng = random.Random(f"{cond.key}-{lang}-{ask}-coherence")
                ref = compose_answer(cond, lang, "doctor", rng, ask)
                texts = [compose_answer(cond, lang, s, rng, ask) for s in STYLES]
                texts += [compose_brief_distilled(cond, lang, rng),
                          compose_explainer(cond, lang, rng),
                          compose_distilled_followup(cond, lang, rng, "care"),
                          compose_distilled_followup(cond, lang, rng, "danger")]
                for text in texts:
                    assert _coherence(text, lang, ref).faults == (), text


# (detector, text, language, expected count): hand-made examples of each fault and of its
# look-alikes that are fine
DETECTOR_CASES = [
    (repetitions, "祝您身体健康！如有其他问题！如有其他问题！", "zh", 1),
    (repetitions, "您好您好您好，请问哪里不舒服？", "zh", 1),
    (repetitions, "祝您身体健康祝您身体健康。", "zh", 1),
    (repetitions, "平时多活动活动，注意休息。", "zh", 0),                 # AB AB is ordinary Chinese
    (repetitions, "Get well soon get well soon.", "en", 1),
    (repetitions, "Rest. The the pain should ease.", "en", 1),
    (repetitions, "I hope this helps. I hope this helps.", "en", 2),     # a clause, and in a row
    (repetitions, "A sudden headache.\n2. Headache with fever.", "en", 0),
    (repetitions, "Is the pain on one side? If the pain is on one side, rest.", "en", 0),
    (numbering_errors, "建议：\n1. 多喝水。\n2. 休息。\n3. 复查。", "zh", 0),
    (numbering_errors, "建议：\n1. 多喝水。\n2. 休息。\n注意：\n1. 发烧。\n2. 咳血。", "zh", 0),
    (numbering_errors, "1.气候土壤：温暖。2.种植：根块繁殖。", "zh", 0),   # an inline list is fine
    (numbering_errors, "体温38.5度，持续2天。", "zh", 0),
    (numbering_errors, "先休息。\n4. 眼压。", "zh", 1),                   # a list starting at 4
    (numbering_errors, "1. 休息。\n3. 2. 口关节突然红肿。", "zh", 3),     # 3 after 1, empty 3, 2 after 3
    (numbering_errors, "1.  ，避免过度焦虑。", "zh", 1),                  # an empty item
    (numbering_errors, "祝您身体健康！如有其他问题1", "zh", 1),            # a number left at the end
    (numbering_errors, "What to do:\n1. Rest.\n2. Drink water.", "en", 0),
    (numbering_errors, "What to do:\n2. Rest.\n1. Drink water.\n5. Sleep.", "en", 2),
    (punctuation_artefacts, "您好，请多喝水。", "zh", 0),
    (punctuation_artefacts, "好的。。请休息：：多喝水！，", "zh", 3),
    (punctuation_artefacts, "这个嘛……不要紧。。。真的吗？！", "zh", 0),      # ellipses, "?!"
    (punctuation_artefacts, "多喝水。\n，注意休息。", "zh", 1),              # a line starting with "，"
    (punctuation_artefacts, "您好.   在医生指导下锻炼。提醒的是. 刷牙。", "zh", 2),
    (punctuation_artefacts, "请提供完整的病历和检查结果.", "zh", 0),         # a final Latin period
    (punctuation_artefacts, "Drink water , and rest .", "en", 2),
    (punctuation_artefacts, "Drink water, and rest.", "en", 0),
    (dangling_sentences, "您好。您提到。", "zh", 1),
    (dangling_sentences, "如果出现。请休息。", "zh", 1),
    (dangling_sentences, "常见表现包括1.  戒酒。", "zh", 1),
    (dangling_sentences, "需要特别提醒的是，如果出现咳血，请立即就医。", "zh", 0),
    (dangling_sentences, "胸痛一般在什么情况下出现？", "zh", 0),
    (dangling_sentences, "建议：\n1. 多喝水。", "zh", 0),
    (dangling_sentences, "建议：\n祝您早日康复。", "zh", 1),                  # a colon with no list
    (dangling_sentences, "Common causes include allergies and.", "en", 1),
    (dangling_sentences, "Where does the pain spread to?", "en", 0),
]


@pytest.mark.parametrize("detector, text, lang, expected", DETECTOR_CASES,
                         ids=[f"{d.__name__}-{i}" for i, (d, *_) in enumerate(DETECTOR_CASES)])
def test_fault_detectors_on_hand_made_examples(detector, text, lang, expected):
    assert detector(text, lang) == expected


def test_a_broken_character_is_a_fault():
    assert _coherence("洗澡\ufffd。", "zh").faults == (("broken_char", 1),)


def test_an_answer_that_says_nothing_fails_the_gate():
    """Empty, punctuation-only or greeting-only answers (what a policy collapses to once salad
    scores low) cannot collect the neutral parts of the rubric."""
    reference = "肺结核可能性大，去感染科看看。"
    for empty in ("", "。", "1.", "您好。", "您好医生！"):
        assert no_content(empty, "zh") == 1
        assert rate(empty, reference, "zh").total < 1.5, empty
    for short in ("是的", "40%", "X线", "葛根素"):                  # short, but real answers
        assert no_content(short, "zh") == 0
    assert no_content("Hi.", "en") == 1 and no_content("Yes.", "en") == 0


def test_off_topic_advice_is_a_consistency_error():
    text = "考虑急性支气管炎，建议呼吸内科就诊。\n建议：\n1. 在医生指导下做腰背肌锻炼。\n2. 戒烟并远离二手烟。"
    assert off_topic_items(text, "zh", ("acute_bronchitis",), frozenset()) == 1
    both = ("acute_bronchitis", "lumbar_disc_herniation")
    assert off_topic_items(text, "zh", both, frozenset()) == 0
    # advice for the condition the doctor named is on topic even if the response names none
    bare = "建议：\n1. 戒烟并远离二手烟。\n2. 多喝水，保持室内湿润。"
    assert off_topic_items(bare, "zh", (), frozenset({"acute_bronchitis"})) == 0
    # a fragment of another condition's red flag counts too
    assert off_topic_items("考虑急性支气管炎。头痛性质突然改变。", "zh", ("acute_bronchitis",), frozenset()) == 1


def test_unrelated_conditions_and_wrong_department():
    salad = "您好。偏头痛。\n肠易激综合征和体。"
    assert unrelated_conditions(salad, "zh", ("migraine", "ibs")) == 1
    hedged = "从症状来看，偏头痛和肠易激综合征都有可能。"                   # framed as alternatives
    assert unrelated_conditions(hedged, "zh", ("migraine", "ibs")) == 0
    assert unrelated_conditions("偏头痛。紧张型头痛。", "zh", ("migraine", "tension_headache")) == 0
    assert wrong_departments("zh", ("migraine",), ("dermatology",)) == 1
    assert wrong_departments("zh", ("migraine",), ("neurology",)) == 0
    # acute glaucoma, a differential of migraine, is an eye condition
    assert wrong_departments("zh", ("migraine",), ("ophthalmology",)) == 0


def test_the_criterion_is_in_the_completion_for_auditors():
    salad, reference, _ = SALAD[0]
    prompt = JudgePrompt("pairwise_rating", "zh", "医生您好，咳嗽一周了。", reference,
                         {"A": salad, "B": reference}, "")
    text, _ = compose(prompt, LocalServerOptions())
    line_a, line_b, final = text.split("\n")
    assert "logical consistency 0.0" in line_a and "repetition 3" in line_a
    assert "logical consistency 1.00 (no faults)" in line_b
    assert final == f"Rating A: {round(rate(salad, reference, 'zh').total)}; Rating B: 7"
    single = JudgePrompt("single_rating", "zh", "咳嗽一周了。", reference, {"A": salad}, "")
    text, _ = compose(single, LocalServerOptions())
    assert "Consistency: 2;" in text.split("\n")[-1]          # 1 + 9 x 0.06


def test_real_answers_are_rarely_flagged(real_data_dir):
    """Doctors' and medical LLMs' answers from the real-format samples keep a high coherence
    (scraped texts do have artefacts: two answers glued with "。，", missing final punctuation)."""
    texts = []
    for line in (real_data_dir / "cmd_reward_test.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        texts += [row["response_chosen"], row["response_rejected"]]
    scores = [_coherence(t, "zh").score for t in texts]
    assert statistics.mean(scores) > 0.9
    assert sum(s >= 0.8 for s in scores) / len(scores) > 0.9
