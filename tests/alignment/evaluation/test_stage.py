"""The eval stage runs the same evaluation as ``medalign eval`` on the data stage's eval sets and
puts the job report's headline keys in its metrics."""

from __future__ import annotations

import json
import shutil

from alignment.stages import eval as eval_stage
from medalign.stage import StageContext


def test_the_eval_stage_reports_the_clinical_keys_and_the_referee(tmp_path, tiny_data_dir, eval_data_dir,
                                                                 tiny_sft_model_dir, tiny_model_dir):
    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data)
    shutil.copytree(eval_data_dir / "eval", data / "eval")
    cfg = eval_stage.Config(max_prompts=4, sampling={"max_new_tokens": 16, "batch_size": 64}, n_bootstrap=100,
                            eval_sets=["single_zh", "multi_en"], rubric={"enabled": True, "max_cases": 2},
                            multi_turn={"enabled": True, "max_cases": 3, "max_turns": 2})
    inputs = {"data": str(data), "policy": str(tiny_sft_model_dir), "baseline": str(tiny_model_dir)}
    m = eval_stage.run(cfg, inputs, tmp_path / "out", StageContext(seed=0, progress=False))
    assert m["clinical_eval_sets"] == ["multi_en", "single_zh"]
    for key in eval_stage.CLINICAL_KEYS:
        assert 0.0 <= m[key] <= 1.0 and m[f"{key}_n"] > 0
    report = json.loads((tmp_path / "out" / "evaluation" / "report.json").read_text())
    pooled = report["clinical"]["models"]["policy"]["all"]["asks_when_missing"]
    assert (m["clinical_asks_when_missing_policy"], m["clinical_asks_when_missing_policy_n"]) == \
        (pooled["value"], pooled["n"])
    assert m["referee_judged"] + sum(m["referee_excluded"].values()) == 30
    assert set(m["referee_by_category"]["single_zh"]) == {
        "病情诊断", "病因分析", "治疗方案", "就医建议", "指标解读", "疾病表述", "后果表述", "注意事项", "功效作用", "医疗费用"}
    assert len(m["referee_by_category"]["multi_en"]) == 20
    assert m["referee_performance_ratio"] > 0 and set(m["leaderboard"]) == {"policy", "baseline"}
    assert "win_rate" in m                                      # the held-out prompts' judge win rate stays
    assert (tmp_path / "out" / "evaluation" / "report.html").is_file()
    # multi-turn and rubric figures of both models (the job report's headline takes them from here)
    assert m["multiturn_cases"] == 3 and m["rubric_cases"] == 4
    for key in ("multiturn_diagnosis_accuracy", "multiturn_asked_when_missing", "rubric_score"):
        for model in ("policy", "baseline"):
            if key == "multiturn_asked_when_missing":
                n_missing = report["multi_turn"]["models"][model]["all"]["asked_when_missing"]["n"]
                assert (f"{key}_{model}" in m) == (n_missing > 0)
                continue
            assert 0.0 <= m[f"{key}_{model}"] <= 1.0 and m[f"{key}_{model}_n"] > 0, key
    assert 1.0 <= m["multiturn_mean_turns_policy"] <= 2.0 and m["multiturn_referee_performance_ratio"] > 0
