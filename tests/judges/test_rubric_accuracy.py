"""The local rubric judge weighs accuracy: a terse wrong diagnosis never beats a correct answer
(issue 10), judged through the server in both orders, with HuatuoGPT's AI-feedback prompt and
with the evaluation referee's prompt, on hand-written pairs in Chinese and English."""

from __future__ import annotations

import pytest

from judges.api import PairItem, judge_pairs
from judges.config import JudgeConfig
from judges.server.rubric import rate, total_score

# (language, question, reference, correct answer, terse wrong answer)
PAIRS = [
    ("zh", "医生您好，一侧头部搏动样疼痛，怕光怕吵，最近一个月发作了三四次。请问这是什么病？",
     "考虑偏头痛，建议神经内科就诊。",
     "根据您的描述，比较符合偏头痛，建议到神经内科就诊。",
     "考虑紧张型头痛。"),
    ("zh", "医生您好，一侧头部搏动样疼痛，怕光怕吵，最近一个月发作了三四次。请问这是什么病？",
     "考虑偏头痛，建议神经内科就诊。",
     "您好，您说的一侧头部搏动样疼痛、怕光怕吵，而且每个月反复发作几次，这是很典型的偏头痛表现。"
     "偏头痛和遗传、睡眠不足、精神压力、饮食都有关系，女性更常见，很多人从年轻时就开始发作。"
     "建议您到神经内科就诊，医生会详细问病史、做神经系统检查，必要时安排头颅影像检查，排除其他原因引起的头痛。",
     "考虑紧张型头痛，去神经内科。规律作息，少喝咖啡。如果出现突然出现的剧烈头痛，请立即就医。"),
    ("zh", "孩子3岁，男孩。手心脚心出红疹，嘴里有疱疹，有点发烧。需要去医院吗？",
     "考虑手足口病，去儿科看看。",
     "像是手足口病，建议到儿科就诊。请问孩子精神怎么样，吃东西多不多？",
     "湿疹，挂皮肤科。"),
    ("en", "Hi doctor, I have throbbing pain on one side of the head and sensitivity to light and noise. "
           "It has happened three or four times this month. What could it be?",
     "Likely migraine. See neurology.",
     "This looks most like migraine. Please see neurology.",
     "Tension-type headache."),
    ("en", "Hi doctor, I have throbbing pain on one side of the head and sensitivity to light and noise. "
           "It has happened three or four times this month. What could it be?",
     "Likely migraine. See neurology.",
     "Thank you for the details. One-sided throbbing pain with sensitivity to light and noise that "
     "comes back several times a month is typical of migraine. Migraine is a common headache disorder "
     "linked to genes, hormonal changes, poor sleep and stress, and it is more common in women. "
     "I suggest you book an appointment with neurology, where the doctor will take a full history and "
     "examine you, and arrange a scan if anything in the history points to another cause.",
     "Probably tension-type headache. See neurology. Keep a regular sleep schedule, and seek urgent care "
     "if you notice a sudden, explosive headache."),
    ("en", "My son is 3. He has a red rash on his palms and soles and blisters in his mouth. Is it serious?",
     "Probably hand, foot and mouth disease. Go to pediatrics.",
     "Sounds like hand, foot and mouth disease; visit pediatrics. Is he drinking enough?",
     "Eczema. See dermatology."),
]


@pytest.mark.parametrize("lang, question, reference, correct, wrong", PAIRS)
def test_the_rubric_rates_a_correct_answer_above_a_terse_wrong_one(lang, question, reference, correct, wrong):
    right, bad = rate(correct, reference, lang), rate(wrong, reference, lang)
    assert right.accuracy > bad.accuracy
    assert right.total > bad.total + 1.0, (right, bad)


@pytest.mark.parametrize("template", ["huatuo_pairwise", "huatuo_referee"])
def test_the_local_judge_prefers_the_correct_answer_in_both_orders(tmp_path, template):
    items = [PairItem(prompt_id=f"p{i}", history=[], question=q, reference=ref, a_id=f"p{i}#right", a_text=right,
                      b_id=f"p{i}#wrong", b_text=wrong, language=lang)
             for i, (lang, q, ref, right, wrong) in enumerate(PAIRS)]
    results = judge_pairs(items, JudgeConfig(template=template), tmp_path)
    for r in results:
        assert r.status == "ok" and {c.order for c in r.comparisons} == {"ab", "ba"}
        for c in r.comparisons:                               # each order on its own, not only the mean
            assert c.score_a > c.score_b, (template, r.item.prompt_id, c)


def test_no_mix_of_the_other_criteria_lets_a_wrong_diagnosis_beat_the_right_one():
    """The weighting itself: a response naming another condition of the right department
    (accuracy 0.75 * 0.1 + 0.25 = 0.325) at its best on every other criterion scores below one
    committing to the right diagnosis and department (accuracy 1) at its worst on all of them.
    (Before the accuracy gate: 1 + 9 * 0.45 = 5.05 against 1 + 9 * 0.696 = 7.26.)"""
    wrong_best = total_score(0.325, 1.0, 1.0, 1.0, 1.0)
    right_worst = total_score(1.0, 0.0, 0.0, 0.0, 1.0)
    assert right_worst > wrong_best
