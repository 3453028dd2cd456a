"""The job report: a summary table on the terminal, ``runs/<job>/report.json`` and ``report.html``.

The report gathers each stage's status, directory, wall time and metrics from its manifest, and a
``headline`` with the figures a reader looks for first (SFT loss, reward-model accuracy, PPO reward
and KL, the clinical ground-truth rates of the policy and the baseline, the referee's performance
ratio and per-category table, the multi-turn and rubric figures when the eval stage has them, judge
win rate). Headline values are copied from stage metrics, never computed here: a
metric a stage did not report is absent, not zero.

A run of part of the job (``--until`` / ``--only``) writes ``report.partial.json`` and
``report.partial.html`` instead, so it never overwrites the report of a whole run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from medalign.artifacts import write_json_atomic

# headline name -> (stage kind, metric name in that stage's manifest[, index into a list metric])
HEADLINE = {
    "sft_loss_start": ("sft", "train_loss_start"),
    "sft_loss_end": ("sft", "train_loss_end"),
    "sft_eval_loss": ("sft", "eval_loss"),
    "judge_calls": ("judge", "calls"),
    "judge_ok_fraction": ("judge", "ok_fraction"),
    "judge_swap_consistency": ("judge", "swap_consistency"),
    "rm_heldout_accuracy": ("reward_model", "heldout_accuracy"),
    "rm_heldout_pairs": ("reward_model", "heldout_pairs"),
    "ppo_reward_first": ("ppo", "reward_first"),
    "ppo_reward_last": ("ppo", "reward_last"),
    "ppo_reward_window_steps": ("ppo", "reward_window_steps"),
    "ppo_kl_last": ("ppo", "kl_last"),
    "ppo_kl_mean": ("ppo", "kl_mean"),
    "rm_agreement_models": ("rm_agreement", "reward_models"),
    "rm_agreement_spearman": ("rm_agreement", "spearman"),
    "rm_agreement_selection_gain": ("rm_agreement", "selection_gain"),
    "rsft_mean_score_start": ("rsft", "mean_score_start"),
    "rsft_mean_score_end": ("rsft", "mean_score_end"),
    "dpo_loss_end": ("dpo", "train_loss_end"),
    "online_rl_reward_first": ("online_rl", "reward_first"),
    "online_rl_reward_last": ("online_rl", "reward_last"),
    "win_rate_vs_baseline": ("eval", "win_rate"),
    "win_rate_ci95_low": ("eval", "win_rate_ci", 0),
    "win_rate_ci95_high": ("eval", "win_rate_ci", 1),
    "eval_judged_prompts": ("eval", "judged_ok"),
    "eval_rm_heldout_accuracy": ("eval", "rm_heldout_accuracy"),
    "transfer_gain_perplexity": ("transfer_eval", "gain_perplexity"),
    "transfer_gain_perplexity_ci95": ("transfer_eval", "gain_perplexity_ci"),
    "transfer_gain_bleu_4": ("transfer_eval", "gain_bleu_4"),
    "transfer_gain_bleu_4_ci95": ("transfer_eval", "gain_bleu_4_ci"),
    "transfer_gain_distinct_2": ("transfer_eval", "gain_distinct_2"),
    "transfer_gain_distinct_2_ci95": ("transfer_eval", "gain_distinct_2_ci"),
    "transfer_gain_diagnosis_accuracy": ("transfer_eval", "gain_diagnosis_accuracy"),
    "transfer_gain_diagnosis_accuracy_ci95": ("transfer_eval", "gain_diagnosis_accuracy_ci"),
    # ground truth on the data stage's eval sets (no LLM; pooled over the sets named below) and
    # HuatuoGPT's referee on the same cases (alignment/evaluation/, issue 10)
    "clinical_eval_sets": ("eval", "clinical_eval_sets"),
    "clinical_diagnosis_accuracy_policy": ("eval", "clinical_diagnosis_accuracy_policy"),
    "clinical_diagnosis_accuracy_baseline": ("eval", "clinical_diagnosis_accuracy_baseline"),
    "clinical_department_accuracy_policy": ("eval", "clinical_department_accuracy_policy"),
    "clinical_department_accuracy_baseline": ("eval", "clinical_department_accuracy_baseline"),
    "clinical_asks_when_missing_policy": ("eval", "clinical_asks_when_missing_policy"),
    "clinical_asks_when_missing_baseline": ("eval", "clinical_asks_when_missing_baseline"),
    "referee_performance_ratio": ("eval", "referee_performance_ratio"),
    "referee_win_rate": ("eval", "referee_win_rate"),
    "referee_win_rate_ci95_low": ("eval", "referee_win_rate_ci", 0),
    "referee_win_rate_ci95_high": ("eval", "referee_win_rate_ci", 1),
    "referee_by_category": ("eval", "referee_by_category"),
    # conversations with the simulated patient (ground truth, no LLM) and HealthBench-format rubric
    # scores, when the eval stage switches them on (multi_turn.enabled, rubric.enabled)
    "multiturn_diagnosis_accuracy_policy": ("eval", "multiturn_diagnosis_accuracy_policy"),
    "multiturn_diagnosis_accuracy_baseline": ("eval", "multiturn_diagnosis_accuracy_baseline"),
    "multiturn_asked_when_missing_policy": ("eval", "multiturn_asked_when_missing_policy"),
    "multiturn_asked_when_missing_baseline": ("eval", "multiturn_asked_when_missing_baseline"),
    "multiturn_referee_performance_ratio": ("eval", "multiturn_referee_performance_ratio"),
    "rubric_score_policy": ("eval", "rubric_score_policy"),
    "rubric_score_baseline": ("eval", "rubric_score_baseline"),
}

# metrics shown in the terminal table, per stage kind (all metrics are in report.json)
_TABLE_METRICS = {
    "data": ("sft_train", "prompts_train", "prompts_test", "cases_test", "quarantined"),
    "bootstrap": ("vocab_size", "parameters"),
    "pretrain": ("train_loss_start", "train_loss_end"),
    "sft": ("train_loss_start", "train_loss_end", "eval_loss"),
    "sample": ("prompts", "samples"),
    "judge": ("calls", "ok_fraction", "swap_consistency", "pairs"),
    "reward_model": ("heldout_accuracy", "heldout_pairs"),
    "ppo": ("reward_first", "reward_last", "kl_last"),
    "rm_agreement": ("reward_models", "spearman", "selection_gain", "cases", "samples"),
    "rsft": ("mean_score_start", "mean_score_end"),
    "dpo": ("train_loss_start", "train_loss_end"),
    "online_rl": ("reward_first", "reward_last", "kl_last"),
    "eval": ("clinical_diagnosis_accuracy_policy", "clinical_diagnosis_accuracy_baseline", "referee_performance_ratio",
             "win_rate", "win_rate_ci", "judged_ok", "rm_heldout_accuracy"),
    "transfer_eval": ("gain_perplexity", "gain_bleu_4", "gain_diagnosis_accuracy", "prompts"),
    "bias": ("respondents", "asked", "non_answers", "api_errors"),
    "router": ("top1_accuracy", "top3_accuracy", "train_cases", "eval_cases"),
    "routing_gain": ("top1_gain", "top1_gain_ci_low", "top1_gain_ci_high", "shared_cases"),
    "policy_routing": ("accuracy", "ci_low", "ci_high", "no_department"),
    "doctor_rank": ("retrieval_top1", "trained_top1", "retrieval_top3", "trained_top3", "cases"),
}


@dataclass
class StageOutcome:
    name: str
    kind: str
    status: str                 # ran | reused | failed | skipped
    out_dir: Path | None
    manifest: dict | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("ran", "reused")


def headline(outcomes: dict[str, StageOutcome]) -> dict:
    """Pick the headline figures from the stages' metrics. When several stages of one kind report
    a figure (a transfer job's three sft stages), each gets its own entry, ``label[stage]``."""
    out = {}
    for label, (kind, metric, *index) in HEADLINE.items():
        found = []
        for o in outcomes.values():
            value = (o.manifest or {}).get("metrics", {}).get(metric) if o.ok and o.kind == kind else None
            if value is not None:
                found.append((o.name, value[index[0]] if index else value))
        if len(found) == 1:
            out[label] = found[0][1]
        else:
            out.update({f"{label}[{name}]": value for name, value in found})
    return out


def write_report(plan, names: list[str], outcomes: dict[str, StageOutcome], started: float,
                 echo=print) -> dict:
    """Write runs/<job>/report.json and report.html (report.partial.* when ``names`` is not the
    whole job), print the summary table, return the report."""
    from jobs.report_html import write_report_html

    stages = {}
    for name in names:
        o = outcomes.get(name) or StageOutcome(name, plan.stages[name].kind, "not run", None, None)
        m = o.manifest or {}
        stages[name] = {"kind": o.kind, "status": o.status, "dir": str(o.out_dir) if o.out_dir else None,
                        "key": m.get("key"), "wall_s": m.get("timings", {}).get("wall_s"),
                        "metrics": m.get("metrics", {}), "error": o.error}
    failed = [n for n, s in stages.items() if s["status"] not in ("ran", "reused")]
    report = {
        "job": plan.job.name,
        "source": str(plan.source),
        "seed": plan.job.seed,
        "status": "ok" if not failed else "failed",
        "failed_or_skipped": failed,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 2),
        "partial": set(names) != set(plan.stages),
        "headline": headline({n: outcomes[n] for n in plan.stages if n in outcomes}),   # in the job's order
        "stages": stages,
    }
    stem = "report.partial" if report["partial"] else "report"
    write_json_atomic(plan.job_dir / f"{stem}.json", report)
    write_report_html(report, plan.job_dir / f"{stem}.html")
    _print_table(report, echo)
    kept = " (a partial run: the whole job's report.json stays as it was)" if report["partial"] else ""
    echo(f"report: {plan.job_dir / stem}.json and .html{kept}")
    return report


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _print_table(report: dict, echo) -> None:
    """A rich table when the terminal supports it, plain text otherwise (both via ``echo``)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"medalign job {report['job']}: {report['status']} in {report['wall_s']:.1f} s")
    for col in ("stage", "status", "wall s", "metrics"):
        table.add_column(col, justify="right" if col == "wall s" else "left")
    for name, s in report["stages"].items():
        keys = _TABLE_METRICS.get(s["kind"], ())
        metrics = ", ".join(f"{k}={_fmt(s['metrics'][k])}" for k in keys if k in s["metrics"])
        wall = f"{s['wall_s']:.1f}" if s["wall_s"] is not None else "-"
        # escaped: "[" in a name, metric or error ("sft_loss_end[sft_source]", "[Errno 2]") is text, not markup
        table.add_row(escape(name), s["status"], wall, escape(metrics or (s["error"] or "")[:120]))
    console = Console(width=140, record=True)
    with console.capture() as cap:
        console.print(table)
        if report["headline"]:
            text = ", ".join(f"{k}={_fmt(v)}" for k, v in report["headline"].items()
                             if not isinstance(v, dict))                          # tables: report.json/.html
            console.print("headline: " + escape(text))        # "[a, b]" is text, not rich markup
    echo(cap.get().rstrip())
