"""RubricReward: the local judge's rating against each prompt's reference, keyed like the ppo
stage's prompts; a prompt without a reference is an error, never a made-up score."""

from __future__ import annotations

import pandas as pd
import pytest

from alignment.rl.rubric_reward import RubricReward
from judges.server.rubric import rate

MIGRAINE_Q = "医生您好，一侧头部搏动样疼痛，怕光怕吵，最近一个月发作了三四次。请问这是什么病？"
RASH_Q = "孩子3岁，男孩。手心脚心出红疹，嘴里有疱疹，有点发烧。需要去医院吗？"


def _prompts(tmp_path):
    rows = [
        {"prompt_id": "a", "messages": [{"role": "user", "content": MIGRAINE_Q}],
         "reference": "考虑偏头痛，建议神经内科就诊。", "language": "zh"},
        # the same prompt again with another reference: the first one counts, as in the ppo stage
        {"prompt_id": "a2", "messages": [{"role": "user", "content": MIGRAINE_Q}],
         "reference": "考虑紧张型头痛。", "language": "zh"},
        {"prompt_id": "b", "messages": [{"role": "user", "content": RASH_Q}],
         "reference": "考虑手足口病，去儿科看看。请问孩子精神怎么样？", "language": "zh"},
        {"prompt_id": "bad", "messages": [{"role": "doctor", "content": "x"}], "reference": "y", "language": "zh"},
        {"prompt_id": "noref", "messages": [{"role": "user", "content": "你好"}], "reference": None, "language": "zh"},
    ]
    path = tmp_path / "train.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_scores_are_the_judges_rating_standardised(tmp_path):
    reward = RubricReward.from_prompts(_prompts(tmp_path), mean=4.0, std=2.0)
    assert len(reward.references) == 2            # malformed row and the row without a reference skipped
    prompt = [{"role": "user", "content": MIGRAINE_Q}]
    right, wrong = "根据您的描述，比较符合偏头痛，建议到神经内科就诊。", "考虑紧张型头痛。"
    scores = reward([prompt, prompt], [right, wrong])
    assert scores.shape == (2,)
    expected = [(rate(t, "考虑偏头痛，建议神经内科就诊。", "zh").total - 4.0) / 2.0 for t in (right, wrong)]
    assert scores.tolist() == pytest.approx(expected)
    assert scores[0] > scores[1]


def test_ask_weight_adds_to_responses_that_ask(tmp_path):
    path = _prompts(tmp_path)
    plain = RubricReward.from_prompts(path, mean=4.0, std=2.0)
    asking = RubricReward.from_prompts(path, mean=4.0, std=2.0, ask_weight=0.5)
    prompt = [{"role": "user", "content": RASH_Q}]
    texts = ["像是手足口病，建议到儿科就诊。请问孩子精神怎么样？", "像是手足口病，建议到儿科就诊。"]
    diff = (asking([prompt] * 2, texts) - plain([prompt] * 2, texts)).tolist()
    assert diff == pytest.approx([0.5, 0.0])


def test_a_prompt_without_a_reference_raises(tmp_path):
    reward = RubricReward.from_prompts(_prompts(tmp_path), mean=4.0, std=2.0)
    with pytest.raises(KeyError, match="no reference for the prompt ending '你好'"):
        reward([[{"role": "user", "content": "你好"}]], ["多喝水。"])
    with pytest.raises(ValueError, match="std must be > 0"):
        RubricReward({}, mean=0.0, std=0.0)
