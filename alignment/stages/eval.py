"""Stage ``eval``: the policy against a baseline on the data stage's eval sets and held-out prompts.

Inputs: ``data`` (``eval/*.parquet`` and ``prompts/<split>.parquet``), ``policy``, ``baseline``,
and optionally ``reward_model`` and ``pairs`` (skipped, and said so in ``eval.json``, when absent),
and any number of ``extra_<name>`` checkpoints (a job's ``extra_sft_doctor: sft_doctor``), evaluated
in step 0 with the policy and the baseline under the name ``<name>`` (as ``extra_models`` paths are).

0. The evaluation of ``medalign eval`` (alignment/evaluation/run.py) on the data stage's eval
   sets, with the models ``policy``, ``baseline`` and any ``extra_models``: clinical ground truth
   (no LLM), HuatuoGPT's referee, the leaderboard; written to ``evaluation/`` (report.json,
   report.html, generations, referee transcripts). Its figures go into the metrics:
   ``clinical_<metric>_<model>`` (pooled over the sets with ground truth, named in
   ``clinical_eval_sets``), ``clinical_by_model`` (every clinical rate of every model), ``referee_performance_ratio`` / ``referee_win_rate`` (policy vs
   baseline, every set) and ``referee_by_category`` (per set: intent or department); with
   ``multi_turn.enabled``, ``multiturn_<metric>_<model>`` (conversations with the simulated
   patient: diagnosis accuracy, asked when missing, mean turns) and
   ``multiturn_referee_performance_ratio``; with ``rubric.enabled``, ``rubric_score_<model>``
   (HealthBench-format rubric score). A data stage without eval sets skips it and says so.
1. One response per prompt from each model (same decoding, same seed).
2. The judge compares them in both orders (``judges.api.judge_pairs``); a pair counts only when
   its status is ``ok``. Outcome per prompt: 1 policy better, 0.5 tie, 0 baseline better. The win
   rate comes with a 95% bootstrap interval over prompts; non-ok pairs are counted by status and
   never scored.
3. BLEU-1..4 / GLEU / ROUGE-1/2/L / Distinct-1/2 of both against the prompts' ``reference``.
4. Mean reward-model score of both, and the RM's pairwise accuracy on the held-out split of
   ``pairs`` (the split the reward_model stage held out, read from its ``reward_stats.json``).

Outputs: ``eval.json``, ``generations.parquet``, ``transcripts.jsonl`` (from the judge), ``evaluation/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from alignment.evaluation.config import EvalModel, MultiTurnSpec, RefereeSpec, RubricSpec
from alignment.generation import SamplingSpec
from alignment.generation_backends import GenerationSpec
from alignment.models import DType
from alignment.specs import RewardScoringSpec
from alignment.stages.inputs import Quarantine, load_prompt_split
from judges.config import JudgeConfig
from medalign.config import StrictModel
from medalign.stage import Input, StageContext

NAME = "eval"
INPUTS = {"data": Input(("data",), "data stage directory (eval/ sets, prompts/)", reads=("prompts",)),
          "policy": Input(("ppo", "rsft", "dpo", "online_rl", "sft"), "checkpoint under evaluation", model=True),
          "baseline": Input(("sft",), "checkpoint it is compared with", model=True),
          "reward_model": Input(("reward_model",), "reward model checkpoint (RM scores and held-out accuracy)",
                                model=True, optional=True),
          "pairs": Input(("judge", "data"), "the pairs the reward model held out (judge or data stage directory)",
                         optional=True)}
# any number of further checkpoints in the same evaluation, named by what follows the prefix: a job's
# ``inputs: {extra_sft_doctor: sft_doctor}`` evaluates stage sft_doctor's model as "sft_doctor"
EXTRA_PREFIX = "extra_"
INPUT_PREFIXES = {EXTRA_PREFIX: Input(("sft", "ppo", "rsft", "dpo", "online_rl"),
                                      "more checkpoints to evaluate (extra_<name>: <stage>), named <name>",
                                      model=True, optional=True)}


class EvalStageConfig(StrictModel):
    """What to evaluate on and how."""

    renamed = {"reward_batch_size": "reward.score_batch_size", "reward_max_length": "reward.max_length"}

    split: str = "test"                                   # prompts/<split>.parquet
    max_prompts: int | None = Field(None, ge=1)           # first N prompts (None: all)
    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(temperature=0.7, top_p=0.9))  # both models
    generation: GenerationSpec = Field(default_factory=GenerationSpec)  # where: in_process, endpoint (launch: per model), ray_actors
    judge: JudgeConfig = Field(default_factory=JudgeConfig)  # judge endpoint/template (local rubric by default)
    tie_tolerance: float = Field(0.0, ge=0)               # |score gap| <= this is a tie
    n_bootstrap: int = Field(2000, ge=100)                # bootstrap resamples for the intervals
    reward: RewardScoringSpec = Field(default_factory=RewardScoringSpec)  # scoring with the reward_model input
    dtype: DType = "auto"                                 # generation / scoring dtype
    seed: int | None = None                               # None: the job seed
    eval_sets: list[str] | None = None                    # the data stage's eval sets to use (None: all)
    max_cases: int | None = Field(None, ge=1)             # first N cases of each set (None: all)
    clinical: bool = True                                 # ground-truth clinical metrics (no LLM)
    referee: RefereeSpec = Field(default_factory=RefereeSpec)  # HuatuoGPT's referee on the eval sets
    rubric: RubricSpec = Field(default_factory=RubricSpec)  # HealthBench-format rubric grading (off by default)
    multi_turn: MultiTurnSpec = Field(default_factory=MultiTurnSpec)  # simulated-patient conversations (off by default)
    extra_models: list[EvalModel] = Field(default_factory=list)  # more checkpoints in the same evaluation


Config = EvalStageConfig

# headline metric -> (model, clinical metric): the six keys of the job report (issue 10)
CLINICAL_KEYS = {f"clinical_{name}_{model}": (model, metric)
                 for name, metric in (("diagnosis_accuracy", "diagnosis_accuracy"),
                                      ("department_accuracy", "department_accuracy"),
                                      ("asks_when_missing", "asks_when_missing"))
                 for model in ("policy", "baseline")}
# headline metric -> (model, multi-turn metric): conversations with the simulated patient
MULTITURN_KEYS = {f"multiturn_{metric}_{model}": (model, metric)
                  for metric in ("diagnosis_accuracy", "asked_when_missing", "mean_turns")
                  for model in ("policy", "baseline")}


def extra_models(cfg: EvalStageConfig, inputs: dict[str, str]) -> dict[str, str]:
    """Name -> checkpoint of the models evaluated beside the policy and the baseline: the
    ``extra_<name>`` inputs (named ``<name>``), then ``cfg.extra_models``; a name given twice or
    taken by the policy / baseline is an error naming it."""
    wired = [(n.removeprefix(EXTRA_PREFIX), p) for n, p in inputs.items() if n.startswith(EXTRA_PREFIX)]
    pairs = wired + [(m.name, m.path) for m in cfg.extra_models]
    names = ["policy", "baseline"] + [n for n, _ in pairs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"eval: model name(s) {twice} given twice (inputs extra_<name> and config "
                         "extra_models share the names with policy and baseline): rename one")
    return dict(pairs)


def evaluate_eval_sets(cfg: EvalStageConfig, inputs: dict[str, str], out: Path, seed: int, ctx) -> dict:
    """The evaluation of alignment/evaluation/run.py on the data stage's eval sets, as metrics."""
    from alignment.evaluation.cases import eval_set_files
    from alignment.evaluation.config import EvalRunConfig
    from alignment.evaluation.run import run_evaluation

    if not eval_set_files(inputs["data"]):
        return {"eval_sets": None, "eval_sets_note": "the data stage wrote no eval sets (recipe outputs.eval)"}
    extra = extra_models(cfg, inputs)
    referee = cfg.referee.model_copy(update={"baseline": "baseline"} if cfg.referee.baseline is None else {})
    run_cfg = EvalRunConfig(
        name="eval", models=[{"name": "policy", "path": inputs["policy"]}, {"name": "baseline", "path": inputs["baseline"]},
                             *({"name": n, "path": p} for n, p in extra.items())],
        eval_sets={"data": [inputs["data"]], "names": cfg.eval_sets, "max_cases": cfg.max_cases},
        clinical=cfg.clinical, referee=referee, rubric=cfg.rubric, multi_turn=cfg.multi_turn,
        sampling=cfg.sampling, seed=seed,
        n_bootstrap=cfg.n_bootstrap, dtype=cfg.dtype)
    from alignment.evaluation.generations import resolve_checkpoint

    checkpoints = {"policy": inputs["policy"], "baseline": inputs["baseline"],
                   **{n: resolve_checkpoint(p) for n, p in extra.items()}}
    report = run_evaluation(run_cfg, out / "evaluation", ctx, checkpoints)
    return evaluation_metrics(report)


def evaluation_metrics(report: dict) -> dict:
    """The stage's metrics from an evaluation report: clinical rates of the policy and the
    baseline (pooled over the sets with ground truth), the referee's performance ratio and win
    rate (policy vs baseline) and its per-category tables."""
    metrics: dict = {"eval_sets": [s["name"] for s in report["eval_sets"]]}
    clinical = report["clinical"]
    if clinical.get("enabled"):
        metrics["clinical_eval_sets"] = clinical["applies_to"]
        for key, (model, metric) in CLINICAL_KEYS.items():
            _stat(metrics, key, clinical["models"][model]["all"][metric])
    pair = (report["referee"].get("pairs") or {}).get("policy vs baseline")
    if pair:
        metrics.update(referee_metrics("referee_", pair))
        metrics["referee_by_category"] = {
            name: {cat: {"n": t["n"], "mean_policy": t["mean_a"], "mean_baseline": t["mean_b"],
                         "performance_ratio": t["performance_ratio"]} for cat, t in s["by_category"].items()}
            for name, s in pair["sets"].items()}
        metrics["clinical_by_model"] = {m: {k: v.get("value") for k, v in t["all"].items() if isinstance(v, dict)
                                            and "value" in v} for m, t in clinical["models"].items()}
    if report["leaderboard"].get("enabled"):
        metrics["leaderboard"] = {r["model"]: r["strength"] for r in report["leaderboard"]["rows"]}
    metrics.update(multi_turn_metrics(report["multi_turn"]))
    metrics.update(rubric_metrics(report["rubric"]))
    return metrics


def referee_metrics(prefix: str, pair: dict) -> dict:
    """The referee's overall figures of the pair policy vs baseline, keys starting with ``prefix``."""
    o = pair["overall"]
    return {f"{prefix}{k}": v for k, v in (
        ("performance_ratio", o["performance_ratio"]), ("ratio_ci", o["ratio_ci"]), ("win_rate", o["win_rate"]),
        ("win_rate_ci", o["win_rate_ci"]), ("mean_policy", o["mean_a"]), ("mean_baseline", o["mean_b"]),
        ("judged", o["n"]), ("excluded", pair["excluded"]))}


def _stat(metrics: dict, key: str, stat: dict, value: str = "value") -> None:
    """``key``, ``key_ci`` and ``key_n`` from a ``{value, ci_low, ci_high, n}`` dict (none when undefined)."""
    if stat.get(value) is not None:
        metrics[key] = stat[value]
        metrics[f"{key}_ci"] = [stat["ci_low"], stat["ci_high"]]
        metrics[f"{key}_n"] = stat["n"]


def multi_turn_metrics(section: dict) -> dict:
    """The multi-turn figures of the policy and the baseline and the referee's ratio on conversations."""
    if not section.get("models"):
        return {}
    metrics = {"multiturn_cases": section["cases"], "multiturn_max_turns": section["max_turns"]}
    for key, (model, metric) in MULTITURN_KEYS.items():
        _stat(metrics, key, section["models"][model]["all"][metric])
    pair = (section["referee"].get("pairs") or {}).get("policy vs baseline")
    if pair:
        metrics.update(referee_metrics("multiturn_referee_", pair))
    return metrics


def rubric_metrics(section: dict) -> dict:
    """The rubric score (HealthBench format) of the policy and the baseline."""
    if not section.get("models"):
        return {}
    metrics = {"rubric_cases": section["cases"]}
    for model in ("policy", "baseline"):
        _stat(metrics, f"rubric_score_{model}", section["models"][model]["all"]["overall"], "score")
        metrics[f"rubric_incomplete_{model}"] = section["models"][model]["all"]["incomplete"]
    return metrics


def _generate(ref: str, role: str, prompts: list[dict], cfg: EvalStageConfig, seed: int, ctx) -> list[str]:
    from alignment.stages.sample import generate_from_checkpoint

    return [g[0].text for g in generate_from_checkpoint(ref, role, prompts, cfg.sampling, 1, seed, cfg.dtype, ctx,
                                                        cfg.generation)]


def judge_policy_vs_baseline(prompts: list[dict], policy: list[str], baseline: list[str], cfg: EvalStageConfig,
                             out: Path, ctx) -> tuple[dict, list]:
    """Win rate of the policy (tie = 0.5, bootstrap CI over prompts) and status counts."""
    from judges.api import PairItem, judge_pairs

    from alignment.metrics import pairwise_outcome, win_rate

    items = [PairItem(prompt_id=p["prompt_id"], history=p["messages"][:-1], question=p["messages"][-1]["content"],
                      reference=p.get("reference"), a_id=f"{p['prompt_id']}#policy", a_text=a,
                      b_id=f"{p['prompt_id']}#baseline", b_text=b, language=p.get("language"))
             for p, a, b in zip(prompts, policy, baseline)]
    results = judge_pairs(items, cfg.judge, store_dir=out, progress=ctx.progress)
    status: dict[str, int] = {}
    for r in results:
        status[r.status] = status.get(r.status, 0) + 1
    ok = [r for r in results if r.status == "ok"]
    outcomes = [pairwise_outcome(r.score_a, r.score_b, cfg.tie_tolerance) for r in ok]
    summary = win_rate(outcomes, n_resamples=cfg.n_bootstrap, seed=ctx.seed)
    consistent = [r.consistent for r in ok if r.consistent is not None]
    summary.update(status_counts=status, excluded=len(results) - len(ok),
                   consistency=sum(consistent) / len(consistent) if consistent else None,
                   mean_score_policy=sum(r.score_a for r in ok) / len(ok) if ok else None,
                   mean_score_baseline=sum(r.score_b for r in ok) / len(ok) if ok else None)
    return summary, results


def _reward_figures(inputs: dict, prompts: list[dict], policy: list[str], baseline: list[str],
                    cfg: EvalStageConfig, ctx) -> dict:
    """Mean RM score of both, and the RM's held-out accuracy on ``pairs`` (None + reason if unavailable)."""
    from alignment.models import load_reward_model, load_tokenizer
    from alignment.reward_scoring import score_responses
    from alignment.stages.reward_model import heldout_metrics, load_preference_data

    if not inputs.get("reward_model"):
        return {"reward_model": None, "reason": "no reward_model input"}
    tok = load_tokenizer(inputs["reward_model"], "reward_model")
    rm = load_reward_model(inputs["reward_model"], device=ctx.device, dtype=cfg.dtype)
    msgs = [p["messages"] for p in prompts]
    figures = {}
    for name, texts in (("policy", policy), ("baseline", baseline)):
        scores = score_responses(rm, tok, msgs, texts, cfg.reward.score_batch_size, cfg.reward.max_length,
                                 ctx.progress)
        figures[f"mean_reward_{name}"] = sum(scores) / len(scores)
        figures[f"_scores_{name}"] = scores
    if not inputs.get("pairs"):
        return {**figures, "heldout": None, "heldout_reason": "no pairs input"}
    stats_file = Path(inputs["reward_model"]).parent / "reward_stats.json"
    settings = json.loads(stats_file.read_text())["settings"] if stats_file.is_file() else {}
    data = load_preference_data(inputs["pairs"], settings.get("source", "auto"), settings.get("heldout_fraction", 0.1),
                                settings.get("heldout_split", "validation"), Quarantine(),
                                settings.get("ranked_pairs", "adjacent"))
    held = heldout_metrics(rm, tok, data["heldout_pairs"], cfg.reward.score_batch_size, cfg.reward.max_length,
                           ctx.progress)
    return {**figures, "heldout": {**held, "source": data["source"], "split_from": str(stats_file) if settings else
                                   "defaults (no reward_stats.json beside the reward model)"}}


def run(cfg: EvalStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    import pandas as pd

    from alignment.distributed import is_main_process
    from alignment.metrics import reference_metrics

    if not is_main_process():
        return {}
    out = Path(out)
    quarantine = Quarantine()
    seed = ctx.seed if cfg.seed is None else cfg.seed
    evaluation = evaluate_eval_sets(cfg, inputs, out, seed, ctx)
    prompts = load_prompt_split(inputs["data"], cfg.split, quarantine, cfg.max_prompts, NAME)
    policy = _generate(inputs["policy"], "policy", prompts, cfg, seed, ctx)
    baseline = _generate(inputs["baseline"], "baseline", prompts, cfg, seed, ctx)
    judged, results = judge_policy_vs_baseline(prompts, policy, baseline, cfg, out, ctx)
    with_ref = [i for i, p in enumerate(prompts) if p.get("reference")]
    refs = [prompts[i]["reference"] for i in with_ref]
    overlap = {name: reference_metrics([texts[i] for i in with_ref], refs)
               for name, texts in (("policy", policy), ("baseline", baseline))}
    reward = _reward_figures(inputs, prompts, policy, baseline, cfg, ctx)
    scores = {k: reward.pop(f"_scores_{k}", [None] * len(prompts)) for k in ("policy", "baseline")}
    pd.DataFrame([{"prompt_id": p["prompt_id"], "messages": p["messages"], "reference": p.get("reference"),
                   "language": p.get("language"), "policy_response": a, "baseline_response": b,
                   # a non-ok pair may carry the scores of its ok order: never report them as scores
                   "judge_status": r.status, "judge_score_policy": r.score_a if r.status == "ok" else None,
                   "judge_score_baseline": r.score_b if r.status == "ok" else None,
                   "rm_policy": sp, "rm_baseline": sb}
                  for p, a, b, r, sp, sb in zip(prompts, policy, baseline, results, scores["policy"],
                                                 scores["baseline"])]).to_parquet(out / "generations.parquet",
                                                                                  index=False)
    report = {"evaluation": evaluation, "prompts": len(prompts), "prompts_with_reference": len(with_ref), "judge": judged,
              "reference_metrics": overlap, "reward_model": reward, "quarantined": len(quarantine),
              "policy": inputs["policy"], "baseline": inputs["baseline"], "judge_name": cfg.judge.name}
    (out / "eval.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=float), encoding="utf-8")
    quarantine.write(out)
    held = (reward.get("heldout") or {})
    return {"win_rate": judged["win_rate"], "win_rate_ci": [judged["ci_low"], judged["ci_high"]],
            "judged_ok": judged["n"], "judge_excluded": judged["excluded"], "judge_status": judged["status_counts"],
            "rm_heldout_accuracy": held.get("heldout_accuracy"),
            "mean_reward_policy": reward.get("mean_reward_policy"),
            "mean_reward_baseline": reward.get("mean_reward_baseline"),
            "rouge_l_policy": overlap["policy"]["rouge_l"], "rouge_l_baseline": overlap["baseline"]["rouge_l"],
            "bleu_4_policy": overlap["policy"]["bleu_4"], "bleu_4_baseline": overlap["baseline"]["bleu_4"],
            **evaluation}
