"""jobs/huatuo_ablation.yaml: HuatuoGPT's ablation arms from one data build, evaluated together
(its plan, checked before any work), and the eval stage's ``extra_<name>`` model inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignment.stages.eval import EvalStageConfig, extra_models
from jobs.plan import load_plan
from medalign.cli import main
from medalign.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
JOB = REPO / "jobs" / "huatuo_ablation.yaml"


def _plan(capsys) -> dict:
    assert main(["run", str(JOB), "--plan", "--json"]) == 0
    return {s["name"]: s for s in json.loads(capsys.readouterr().out)["stages"]}


def _stage(name: str) -> dict:
    return {"stage": name, "model": True}


def test_the_ablation_arms_come_from_one_data_build_and_are_evaluated_together(capsys):
    stages = _plan(capsys)
    assert [s["kind"] for s in stages.values()].count("data") == 1
    sfts = {n: s for n, s in stages.items() if s["kind"] == "sft"}
    assert {n: s["config"]["origins"] for n, s in sfts.items()} == {
        "sft": None, "sft_distilled": ["distilled"], "sft_doctor": ["real_doctor"]}
    for s in sfts.values():                                  # the arms differ in the rows they read only
        assert s["inputs"]["data"] == {"stage": "data", "model": False}
        assert s["inputs"]["model"] == _stage("bootstrap")
        assert {k: v for k, v in s["config"].items() if k != "origins"} == \
            {k: v for k, v in sfts["sft"]["config"].items() if k != "origins"}
    for name in ("ppo", "dpo", "grpo", "sample", "reward_model"):      # RLAIF, DPO, GRPO start from hybrid SFT
        inp = stages[name]["inputs"]
        assert inp.get("policy", inp.get("backbone")) == _stage("sft"), name
    assert stages["dpo"]["inputs"]["pairs"] == {"stage": "judge", "model": False}
    assert stages["grpo"]["kind"] == "online_rl" and stages["grpo"]["config"]["algorithm"] == "grpo"
    assert stages["ppo"]["config"]["kl"]["coef"] == stages["grpo"]["config"]["kl"]["coef"] == 0.05
    ev = stages["eval"]
    assert ev["inputs"]["policy"] == _stage("ppo") and ev["inputs"]["baseline"] == _stage("sft")
    assert {k: v for k, v in ev["inputs"].items() if k.startswith("extra_")} == {
        "extra_sft_distilled": _stage("sft_distilled"), "extra_sft_doctor": _stage("sft_doctor"),
        "extra_dpo": _stage("dpo"), "extra_grpo": _stage("grpo")}
    assert ev["config"]["clinical"] and ev["config"]["referee"]["pairs"] == "all"
    assert ev["config"]["multi_turn"]["enabled"]


def test_an_unknown_input_names_the_prefix_the_eval_stage_takes():
    with pytest.raises(ConfigError, match=r"huatuo_ablation.yaml:\d+: stages.eval.inputs: unknown input\(s\) "
                                          r"\['dpo_model'\]; eval takes \[.*'extra_<name>'\]"):
        load_plan(JOB, ["stages.eval.inputs.dpo_model=dpo"])
    with pytest.raises(ConfigError, match=r"unknown input\(s\) \['extra_'\]"):     # a name is needed
        load_plan(JOB, ["stages.eval.inputs.extra_=dpo"])
    with pytest.raises(ConfigError, match=r"stages.sft.inputs: unknown input\(s\) \['extra_x'\]"):  # eval only
        load_plan(JOB, ["stages.sft.inputs.extra_x=bootstrap"])


def test_extra_models_are_named_by_their_input_and_never_twice():
    inputs = {"data": "/d", "policy": "/p/model", "baseline": "/b/model", "extra_dpo": "/dpo/model",
              "extra_sft_doctor": "/doc/model"}
    cfg = EvalStageConfig(extra_models=[{"name": "mine", "path": "/m"}])
    assert extra_models(cfg, inputs) == {"dpo": "/dpo/model", "sft_doctor": "/doc/model", "mine": "/m"}
    with pytest.raises(ValueError, match=r"\['dpo'\] given twice"):
        extra_models(EvalStageConfig(extra_models=[{"name": "dpo", "path": "/m"}]), inputs)
    with pytest.raises(ValueError, match=r"\['policy'\] given twice"):
        extra_models(EvalStageConfig(), {**inputs, "extra_policy": "/x"})


def test_the_ablation_recipe_tags_every_sft_row_with_the_origin_an_arm_selects(tmp_path):
    """One small build of data_recipes/recipes/huatuo_ablation.yaml: both origins in sft/, in the
    recipe's proportions, and prompts at every doctor turn (first turns that ask included)."""
    import pandas as pd

    from data_recipes.synthetic.clinical_rules import asks_question

    out = tmp_path / "data"
    assert main(["data", "build", "huatuo_ablation", "outputs.sft.total=400", "--synthetic", "200",
                 "--out", str(out), "--quiet"]) == 0
    sft = pd.concat(pd.read_parquet(out / "sft" / f"{s}.parquet") for s in ("train", "validation", "test"))
    share = sft["origin"].value_counts(normalize=True).to_dict()
    assert set(share) == {"distilled", "real_doctor"}
    assert share["distilled"] == pytest.approx(0.2716 + 0.3048, abs=0.03)
    prompts = pd.read_parquet(out / "prompts" / "train.parquet")
    first = prompts[prompts["messages"].map(len) == 1]
    assert len(first) and first["reference"].map(asks_question).any()          # asking turns are RL prompts
    assert (prompts["messages"].map(len) > 1).any()                            # so are later turns
