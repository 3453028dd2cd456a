"""Stage ``policy_routing``: the generative policy's routing accuracy, the department named in
its reply (no classifier head: what a patient would read).

    policy_routing:
      inputs: {policy: sft}                  # or ppo, rsft, dpo, online_rl, a path or hub id
      config: {split: test, sampling: {temperature: 0, max_new_tokens: 48}}

For every case of ``split`` with a department, the policy answers the patient's opening turns
followed by a "which department should I see?" question (``ask: true``, the phrasing the
``department_routing`` SFT rows use) or the opening turns alone (``ask: false``). The reply routes
correctly when it names the case's department and no other (``alignment.routing.policy``: the
evaluation's rule, ``data_recipes.synthetic.clinical_rules.department_outcome``). Outputs
``policy_routing.json`` (accuracy with a 95% bootstrap interval over cases, how often no or another
department was named, the confusion table of gold vs first-named department) and
``generations.parquet``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from alignment.generation import SamplingSpec
from medalign.config import StrictModel
from medalign.stage import Input, StageContext

NAME = "policy_routing"
INPUTS = {"data": Input(("data",), "data stage directory (cases/)", reads=("cases",)),
          "policy": Input(("ppo", "rsft", "dpo", "online_rl", "sft"), "the generative policy", model=True)}
NO_DEPARTMENT = "(none)"


class PolicyRoutingConfig(StrictModel):
    """How the policy is asked, and on which cases."""

    split: str = "test"                              # cases asked
    ask: bool = True                                 # append the routing question to the patient's words
    max_cases: int | None = Field(None, ge=1)        # a seeded sample of N cases of the split (None: all)
    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(temperature=0.0, max_new_tokens=48))  # greedy by default
    bootstrap_resamples: int = Field(2000, ge=100)   # resamples of the 95% interval over cases
    seed: int | None = None                          # None: the job seed


Config = PolicyRoutingConfig


def accept(cfg: PolicyRoutingConfig, metrics: dict) -> list[str]:
    return [] if metrics.get("cases") else [f"no {cfg.split} case with a department to ask about"]


def routing_prompts(cases, ask: bool) -> list[list[dict]]:
    """One user turn per case: its patient's words, then (``ask``) the routing question."""
    from data_recipes.transforms.builders import routing_question

    prompts = []
    for case_id, text, lang in zip(cases.ids, cases.texts, cases.languages):
        question = "\n\n" + routing_question(case_id.rsplit("#", 1)[0].split(":", 1)[-1], lang) if ask else ""
        prompts.append([{"role": "user", "content": text + question}])
    return prompts


def score_replies(replies: list[str], gold: list[str], resamples: int, seed: int) -> dict:
    """Accuracy (first named department == gold) with its interval, the share of replies naming
    no department or another one first, and the confusion table of gold vs first-named."""
    from alignment.routing.metrics import confusion_table, mean_with_interval
    from alignment.routing.policy import routed_department

    verdicts = [routed_department(r, g) for r, g in zip(replies, gold)]
    n = len(verdicts)
    gold_keys = [v["gold_key"] or g for v, g in zip(verdicts, gold)]
    named = [v["named"] or NO_DEPARTMENT for v in verdicts]
    return {"accuracy": mean_with_interval([1.0 if v["correct"] else 0.0 for v in verdicts], resamples, seed),
            "no_department": sum(1 for v in verdicts if v["named"] is None) / n if n else None,
            "other_department_first": sum(1 for v in verdicts if v["named"] and not v["correct"]) / n if n else None,
            "gold_named_anywhere": sum(1 for v in verdicts if v["gold_anywhere"]) / n if n else None,
            "gold_unknown_to_lexicon": sum(1 for v in verdicts if v["gold_key"] is None),
            "confusion": confusion_table(gold_keys, named), "verdicts": verdicts}


def run(cfg: PolicyRoutingConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    import pandas as pd

    from alignment.generation import generate_responses
    from alignment.models import load_causal_lm, load_tokenizer
    from alignment.routing.cases import label_set, read_rows, select, subsample

    rows = read_rows(inputs["data"], cfg.split)
    cases = select(rows, "department", label_set(rows, "department"))
    seed = ctx.seed if cfg.seed is None else cfg.seed
    if cfg.max_cases is not None:
        cases = subsample(cases, cfg.max_cases, seed)
    if not cases.ids:
        return {"cases": 0}
    tokenizer = load_tokenizer(inputs["policy"], "policy")
    model = load_causal_lm(inputs["policy"], "policy", device=ctx.device)
    prompts = routing_prompts(cases, cfg.ask)
    replies = [g[0].text for g in generate_responses(model, tokenizer, prompts, cfg.sampling, k=1, seed=seed,
                                                     progress=ctx.progress, desc="routing replies")]
    result = score_replies(replies, cases.labels, cfg.bootstrap_resamples, seed)
    verdicts = result.pop("verdicts")
    pd.DataFrame({"case_id": cases.ids, "prompt": [p[0]["content"] for p in prompts], "reply": replies,
                  "gold": cases.labels, "named": [v["named"] for v in verdicts],
                  "correct": [v["correct"] for v in verdicts]}).to_parquet(Path(out) / "generations.parquet", index=False)
    result |= {"split": cfg.split, "ask": cfg.ask, "cases": len(cases.ids), "left_out": cases.left_out}
    (Path(out) / "policy_routing.json").write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    acc = result["accuracy"]
    ctx.logger.info("policy routing accuracy %.3f [%.3f, %.3f] over %d cases", acc["accuracy"], acc["ci_low"],
                    acc["ci_high"], acc["n"])
    return {"cases": len(cases.ids), "accuracy": acc["accuracy"], "ci_low": acc["ci_low"], "ci_high": acc["ci_high"],
            "no_department": result["no_department"], "other_department_first": result["other_department_first"]}

