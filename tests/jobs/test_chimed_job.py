"""jobs/chimed_rsft.yaml: ChiMed-GPT's reward-model ablation wired as planned, checked before any work."""

from __future__ import annotations

import json
from pathlib import Path

from medalign.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_chimed_job_trains_both_rms_on_the_same_tuples_and_compares_them(capsys):
    assert main(["run", str(REPO / "jobs" / "chimed_rsft.yaml"), "--plan", "--json"]) == 0
    stages = {s["name"]: s for s in json.loads(capsys.readouterr().out)["stages"]}
    binary, ranked = stages["rm_binary"], stages["rm_ranked"]
    assert binary["kind"] == ranked["kind"] == "reward_model"
    for rm in (binary, ranked):
        assert rm["inputs"] == {"pairs": {"stage": "data", "model": False}, "backbone": {"stage": "sft", "model": True}}
        assert rm["config"]["source"] == "ranked" and rm["config"]["eval_every_steps"]
    # the two RMs differ in which pairs of a ranking they train on, nothing else
    assert {k for k in binary["config"] if binary["config"][k] != ranked["config"][k]} == {"ranked_pairs"}
    assert (binary["config"]["ranked_pairs"], ranked["config"]["ranked_pairs"]) == ("best_worst", "adjacent")
    agreement = stages["rm_agreement"]
    assert agreement["inputs"]["reward_model"] == {"stage": "rm_binary", "model": True}
    assert agreement["inputs"]["other_reward_model"] == {"stage": "rm_ranked", "model": True}
    assert agreement["inputs"]["policy"] == {"stage": "sft", "model": True}
    # the samples scored are drawn as rsft draws its own
    assert agreement["config"]["k"] == stages["rsft"]["config"]["k"]
    assert agreement["config"]["sampling"] == stages["rsft"]["config"]["sampling"]
    assert stages["rsft"]["inputs"]["reward_model"]["stage"] in ("rm_binary", "rm_ranked")
    assert stages["eval"]["inputs"]["baseline"] == {"stage": "sft", "model": True}
    assert stages["eval"]["inputs"]["policy"] == {"stage": "rsft", "model": True}
