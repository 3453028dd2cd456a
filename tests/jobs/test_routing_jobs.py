"""jobs/routing.yaml and jobs/doctor_recommendation.yaml: their plans, checked before any work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jobs.plan import load_plan
from medalign.cli import main
from medalign.config import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _plan(job: str, capsys) -> dict:
    assert main(["run", str(REPO / "jobs" / job), "--plan", "--json"]) == 0
    return {s["name"]: s for s in json.loads(capsys.readouterr().out)["stages"]}


def test_routing_job_compares_routers_on_one_backbone_and_scores_the_policy(capsys):
    stages = _plan("routing.yaml", capsys)
    assert [s["kind"] for s in stages.values()].count("router") == 5
    for name in ("router_alone", "router_multitask", "router_alone_scarce", "router_multitask_scarce"):
        assert stages[name]["inputs"]["backbone"] == {"stage": "bootstrap", "model": True}
        assert stages[name]["inputs"]["data"] == {"stage": "data", "model": False}
    assert stages["router_sft"]["inputs"]["backbone"] == {"stage": "sft", "model": True}
    assert stages["router_multitask"]["config"]["generation_weight"] == 1.0
    assert stages["router_alone"]["config"]["generation_weight"] == 0.0
    # the two sides of a comparison differ in the generation task only
    alone, multi = stages["router_alone_scarce"]["config"], stages["router_multitask_scarce"]["config"]
    assert {k for k in alone if alone[k] != multi[k]} == {"generation_weight"}
    assert stages["gain_multitask"]["inputs"] == {"baseline": {"stage": "router_alone", "model": False},
                                                  "candidate": {"stage": "router_multitask", "model": False}}
    assert stages["policy_routing"]["inputs"]["policy"] == {"stage": "sft", "model": True}
    assert stages["data"]["config"]["synthetic"]["sizes"] == {"realmeddial": 600}


def test_doctor_recommendation_job_ranks_with_a_doctor_router(capsys):
    stages = _plan("doctor_recommendation.yaml", capsys)
    assert stages["doctor_router"]["config"]["target"] == "doctor"
    assert stages["doctor_rank"]["inputs"]["router"] == {"stage": "doctor_router", "model": False}
    assert stages["doctor_rank"]["config"]["top_k"] == [1, 3, 5]


def test_a_recipe_without_cases_fails_the_plan_naming_every_reader():
    job = REPO / "jobs" / "routing.yaml"
    with pytest.raises(ConfigError) as e:
        load_plan(job, ["stages.data.config.overrides=[outputs.cases=null]"])
    text = str(e.value)
    assert re.search(r"routing.yaml:\d+: stages.router_alone.inputs.data: router reads cases from stage 'data'", text)
    assert "stages.policy_routing.inputs.data" in text and "stages.sft.inputs.data" not in text
