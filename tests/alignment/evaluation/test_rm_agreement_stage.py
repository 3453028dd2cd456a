"""The rm_agreement stage end to end on tiny models: k samples per eval case with ground truth,
their quality, both RMs' scores of them, the agreement table and the held-out rungs."""

from __future__ import annotations

import json
import shutil

import pytest

from medalign.stage import StageContext


@pytest.mark.slow
def test_rm_agreement_scores_the_same_samples_with_both_rms(tmp_path, eval_data_dir, tiny_data_dir,
                                                            tiny_sft_model_dir, tiny_reward_model_dir,
                                                            tiny_trained_reward_model_dir):
    import pandas as pd

    from alignment.evaluation.clinical import CaseCheck, quality_score
    from alignment.stages import rm_agreement

    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data)
    shutil.copytree(eval_data_dir / "eval", data / "eval")
    cfg = rm_agreement.Config(k=2, max_cases=3, n_bootstrap=100, sampling={"max_new_tokens": 8, "batch_size": 8},
                              reward={"max_length": 128})
    inputs = {"data": str(data), "policy": str(tiny_sft_model_dir), "reward_model": str(tiny_reward_model_dir),
              "other_reward_model": str(tiny_trained_reward_model_dir)}
    metrics = rm_agreement.run(cfg, inputs, tmp_path / "out", StageContext(seed=0, progress=False))

    rows = pd.read_parquet(tmp_path / "out" / "samples.parquet")
    # 3 cases of each set with truth (the KUAKE queries have none), 2 samples each
    assert len(rows) == 12 and set(rows["eval_set"]) == {"single_zh", "multi_en"}
    for _, r in rows.iterrows():
        check = CaseCheck(*(None if pd.isna(v) else v for v in (r[f"check_{f}"] for f in CaseCheck.__dataclass_fields__)))
        assert quality_score(check) == pytest.approx(r["quality"])
    assert metrics["reward_models"] == ["reward_model", "other_reward_model"]
    assert rows["score_reward_model"].nunique() > 1 and rows["score_other_reward_model"].nunique() > 1
    report = json.loads((tmp_path / "out" / "agreement.json").read_text())
    assert report["agreement"]["cases"] == 6 and report["agreement"]["samples"] == 12
    assert set(report["agreement"]["paired"]) == {"other_reward_model minus reward_model"}
    assert metrics["spearman"] == [report["agreement"]["models"][m]["spearman"]["value"] for m in metrics["reward_models"]]
    n_tuples = len(pd.read_parquet(data / "ranked" / "validation.parquet"))
    assert report["heldout_tuples"] == n_tuples
    for rungs in metrics["heldout_by_rung"].values():
        assert rungs["doctor>distilled"][3] == n_tuples and rungs["doctor>vague"][3] == n_tuples
        assert rungs["adjacent"][3] == 2 * n_tuples
