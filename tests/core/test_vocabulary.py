"""One name per idea: old field names fail naming the new one; overrides reach one stage only."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from jobs.plan import load_plan
from medalign.registry import BUILTIN_STAGES, stage_module
from medalign.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "jobs" / "quickstart.yaml"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)      # the job names its recipe relative to the repository


def _problems(path, overrides=()) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_plan(path, list(overrides))
    return e.value.problems


def test_old_ppo_names_in_a_job_file_give_file_line_and_new_name(tmp_path):
    text = QUICKSTART.read_text(encoding="utf-8")
    new = "optim: {learning_rate: 2.0e-4, critic_learning_rate: 2.0e-4}"
    assert new in text and "sampling: {max_new_tokens: 48" in text
    text = text.replace(new, "optim: {lr: 2.0e-4, critic_lr: 2.0e-4}")
    text = text.replace("sampling: {max_new_tokens: 48", "rollout: {max_new_tokens: 48")
    path = tmp_path / "old.yaml"
    path.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    optim_line = next(i for i, t in enumerate(lines, 1) if "critic_lr" in t)
    rollout_line = next(i for i, t in enumerate(lines, 1) if "rollout:" in t)
    assert sorted(_problems(path)) == sorted([   # every old name at once, nested ones included
        f"{path}:{rollout_line}: stages.ppo.config.rollout: renamed to sampling",
        f"{path}:{optim_line}: stages.ppo.config.optim.lr: renamed to optim.learning_rate",
        f"{path}:{optim_line}: stages.ppo.config.optim.critic_lr: renamed to optim.critic_learning_rate",
    ])


def test_old_names_in_overrides_name_the_override_and_the_new_name():
    assert _problems(QUICKSTART, ["stages.ppo.config.optim.lr=1e-3"]) == [
        f"{QUICKSTART} (override 'stages.ppo.config.optim.lr=1e-3'): stages.ppo.config.optim.lr: "
        "renamed to optim.learning_rate"]
    assert _problems(QUICKSTART, ["stages.eval.config.reward_max_length=128"]) == [
        f"{QUICKSTART} (override 'stages.eval.config.reward_max_length=128'): stages.eval.config.reward_max_length: "
        "renamed to reward.max_length"]
    # a stage added by overrides: online_rl's trl names point at the ppo-style ones
    assert sorted(_problems(QUICKSTART, ["stages.grpo.kind=online_rl", "stages.grpo.config.beta=0.1",
                                         "stages.grpo.config.max_completion_tokens=32"])) == [
        f"{QUICKSTART} (override 'stages.grpo.config.beta=0.1'): stages.grpo.config.beta: renamed to kl.coef",
        f"{QUICKSTART} (override 'stages.grpo.config.max_completion_tokens=32'): "
        "stages.grpo.config.max_completion_tokens: renamed to sampling.max_new_tokens"]


def test_an_override_of_one_stage_leaves_a_stage_sharing_its_anchor_unchanged():
    """quickstart.yaml gives stages.judge and stages.eval the same ``x-judge`` anchor."""
    base = load_plan(QUICKSTART)
    judge_model = base.stages["judge"].config.judges[0].model
    plan = load_plan(QUICKSTART, ["stages.judge.config.judges.0.model=judge-only",
                                  "stages.eval.config.judge.template=verdict_pairwise"])
    assert plan.stages["judge"].config.judges[0].model == "judge-only"
    assert plan.stages["eval"].config.judge.model == judge_model
    assert plan.stages["judge"].config.judges[0].template == base.stages["judge"].config.judges[0].template
    assert plan.stages["eval"].config.judge.template == "verdict_pairwise"


def _models(model: type[BaseModel], seen: set) -> list[type[BaseModel]]:
    """``model`` and every model reachable through its fields' annotations."""
    if model in seen:
        return []
    seen.add(model)
    found = [model]
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                found += _models(t, seen)
            stack += list(typing.get_args(t))
    return found


def _resolves(model: type[BaseModel], path: str) -> bool:
    head, _, rest = path.partition(".")
    if head not in model.model_fields:
        return False
    if not rest:
        return True
    annotation = model.model_fields[head].annotation
    nested = [t for t in (annotation, *typing.get_args(annotation)) if isinstance(t, type) and issubclass(t, BaseModel)]
    return any(_resolves(t, rest) for t in nested)


@pytest.mark.parametrize("kind", sorted(BUILTIN_STAGES))
def test_every_renamed_table_points_at_real_fields(kind):
    for model in _models(stage_module(kind).Config, set()):
        for old, new in model.renamed.items():
            assert old not in model.model_fields, f"{model.__name__}.{old} is both a field and renamed"
            for name in (new,) if isinstance(new, str) else new:
                assert _resolves(model, name), f"{model.__name__}: {old} -> {name}, which is no field"
