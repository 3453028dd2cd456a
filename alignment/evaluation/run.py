"""Many models on many eval sets in one run: generations, clinical metrics, the referee, a
leaderboard, rubric and multi-turn sections, report.json and report.html.

    report = run_evaluation(cfg, out_dir, ctx)       # cfg: alignment.evaluation.config.EvalRunConfig

Steps (each figure's definition lives in the module that computes it):

1. the eval sets (cases.py) and one response per case from every model, cached by content
   (generations.py): a model already seen with the same sampling and seed is not regenerated;
2. clinical metrics per model and eval set, pooled over the sets with ground truth (``all``), and
   paired differences between the models (clinical.py); sets without ground truth are listed as
   such: only the judge metrics apply to them;
3. the referee on every pair of models (or each against a baseline), one judge run per pair into
   ``out_dir/referee/`` (transcripts and cache shared), so adding a model judges only its pairs
   (referee.py); a Bradley-Terry leaderboard from all pairwise outcomes (leaderboard.py);
4. rubric grading and multi-turn conversations when switched on (they need
   ``alignment.evaluation.healthbench`` / ``alignment.evaluation.patient``);
5. ``report.json``, ``report.html`` (report.py) and ``generations.parquet`` in ``out_dir``.
"""

from __future__ import annotations

import time
from pathlib import Path

from alignment.evaluation import clinical, referee
from alignment.evaluation.cases import Case, EvalSet, load_eval_sets
from alignment.evaluation.config import EvalRunConfig
from alignment.evaluation.generations import cached_generations, resolve_checkpoint
from alignment.evaluation.leaderboard import leaderboard
from medalign.artifacts import write_json_atomic
from medalign.errors import UserError

NO_TRUTH = "no ground truth in this set: the clinical metrics do not apply (only the judge metrics do)"


def run_evaluation(cfg: EvalRunConfig, out_dir: str | Path, ctx, checkpoints: dict[str, str] | None = None) -> dict:
    """Evaluate ``cfg.models`` (``checkpoints``: model name -> checkpoint, resolved from
    ``cfg.models`` when None) on ``cfg.eval_sets``; writes and returns the report."""
    from alignment.evaluation.report import write_report_html

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    e = cfg.eval_sets
    sets = load_eval_sets(e.data, e.files, e.names, e.max_cases)
    cases = [c for s in sets for c in s.cases]
    if not cases:
        raise UserError(f"no eval cases in {e.data + e.files}: build a recipe with outputs.eval (docs/CONTRACTS.md)")
    checkpoints = checkpoints or {m.name: resolve_checkpoint(m.path) for m in cfg.models}
    models = [m.name for m in cfg.models]
    responses, generation = generate_all(cfg, checkpoints, cases, out, ctx)
    write_generations(out / "generations.parquet", cases, responses)
    report = {"name": cfg.name, "models": [{"name": m, "checkpoint": checkpoints[m], "digest": generation[m]["digest"]}
                                           for m in models],
              "eval_sets": [_set_info(s) for s in sets], "sampling": cfg.sampling.model_dump(mode="json"),
              "seed": cfg.seed, "generation": generation}
    report["clinical"] = clinical_section(sets, responses, models, cfg) if cfg.clinical else {"enabled": False}
    report["referee"], report["leaderboard"] = referee_section(cases, responses, models, cfg, out, ctx)
    report["rubric"] = rubric_section(cases, responses, checkpoints, cfg, out, ctx)
    report["multi_turn"] = multi_turn_section(cases, checkpoints, cfg, out, ctx)
    report["cost"] = cost_table(models, generation, report["referee"])
    report["wall_s"] = round(time.perf_counter() - t0, 2)
    write_json_atomic(out / "report.json", report)
    write_report_html(report, out / "report.html")
    return report


def _set_info(s: EvalSet) -> dict:
    info = {"name": s.name, "path": s.path, "cases": len(s.cases),
            "categories": sorted({c.category or "-" for c in s.cases}), "ground_truth": s.has_truth}
    if not s.has_truth:
        info["note"] = NO_TRUTH
    return info


def generate_all(cfg: EvalRunConfig, checkpoints: dict[str, str], cases: list[Case], out: Path, ctx):
    """Every model's response to every case (cached): (responses by model, stats by model)."""
    responses, stats = {}, {}
    for name, ref in checkpoints.items():
        ctx.logger.info("eval: generating with %s (%s)", name, ref)
        responses[name], stats[name] = cached_generations(ref, name, cases, cfg.sampling, cfg.seed, cfg.dtype,
                                                          out / "cache" / "generations", ctx)
    return responses, stats


def write_generations(path: Path, cases: list[Case], responses: dict[str, list[str]]) -> None:
    import pandas as pd

    rows = [{"eval_set": c.eval_set, "case_id": c.case_id, "category": c.category, "messages": c.messages,
             "reference": c.reference, "model": m, "response": texts[i]}
            for m, texts in responses.items() for i, c in enumerate(cases)]
    pd.DataFrame(rows).to_parquet(path, index=False)


def clinical_section(sets: list[EvalSet], responses: dict[str, list[str]], models: list[str],
                     cfg: EvalRunConfig) -> dict:
    """Clinical metrics per model and set, pooled (``all``: every case; each metric over the
    cases where it applies), and paired differences between every two models."""
    cases = [c for s in sets for c in s.cases]
    checks = {m: [clinical.check_response(t, c.truth) for t, c in zip(responses[m], cases)] for m in models}
    span = {s.name: (sum(len(t.cases) for t in sets[:k]), len(s.cases)) for k, s in enumerate(sets)}

    def part(m: str, name: str) -> list:
        start, n = span[name]
        return checks[m][start:start + n]

    truth_sets = [s.name for s in sets if s.has_truth]
    out = {"enabled": True, "applies_to": truth_sets,
           "not_applicable": {s.name: NO_TRUTH for s in sets if not s.has_truth},
           "models": {m: {"all": clinical.summarise(checks[m], cfg.n_bootstrap, cfg.seed),
                          "sets": {n: clinical.summarise(part(m, n), cfg.n_bootstrap, cfg.seed) for n in span}}
                      for m in models},
           "paired": {}}
    for a, b in referee.model_pairs(models, cfg.referee.pairs, cfg.referee.baseline):
        out["paired"][f"{a} vs {b}"] = {"all": clinical.paired(checks[a], checks[b], cfg.n_bootstrap, cfg.seed),
                                        "sets": {n: clinical.paired(part(a, n), part(b, n), cfg.n_bootstrap, cfg.seed)
                                                 for n in truth_sets}}
    return out


def referee_section(cases: list[Case], responses: dict[str, list[str]], models: list[str], cfg: EvalRunConfig,
                    out: Path, ctx) -> tuple[dict, dict]:
    """The referee's tables per pair of models and the leaderboard (or why they were not run)."""
    r = cfg.referee
    if not r.enabled or len(models) < 2:
        why = "referee.enabled is false" if not r.enabled else "one model: nothing to compare"
        return {"enabled": False, "reason": why}, {"enabled": False, "reason": why}
    pairs = referee.model_pairs(models, r.pairs, r.baseline)
    by_pair, tables, runs = {}, {}, {}
    for a, b in pairs:
        ctx.logger.info("eval: referee %s vs %s on %d cases (both orders)", a, b, len(cases))
        results, stats = referee.run_referee(cases, responses, [(a, b)], r.judge, out / "referee", ctx.progress)
        by_pair[(a, b)] = results[(a, b)]
        tables[f"{a} vs {b}"] = referee.summarise_pair(cases, results[(a, b)], r.tie_tolerance, cfg.n_bootstrap,
                                                       cfg.seed, r.include_flagged)
        runs[f"{a} vs {b}"] = {k: stats.to_dict()[k] for k in ("planned", "already_done", "cache_hits",
                                                               "api_calls", "not_run", "statuses", "wall_s")}
    outcomes = referee.case_outcomes(cases, by_pair, models, r.tie_tolerance, r.include_flagged)
    board = {"enabled": True, "prior_games_per_pair": r.bt_prior,
             "rows": leaderboard(models, outcomes, r.bt_prior, cfg.n_bootstrap, seed=cfg.seed)}
    section = {"enabled": True, "template": r.judge.template, "judge": r.judge.name, "model": r.judge.model,
               "endpoint": r.judge.endpoint_identity(), "pairs": tables, "runs": runs,
               "transcripts": str(out / "referee" / "transcripts.jsonl")}
    return section, board


def rubric_section(cases: list[Case], responses: dict[str, list[str]], checkpoints: dict[str, str],
                   cfg: EvalRunConfig, out: Path, ctx) -> dict:
    """HealthBench-format grading of the cases that carry a rubric (alignment.evaluation.healthbench)."""
    if not cfg.rubric.enabled:
        return {"enabled": False}
    healthbench = _optional_module("healthbench", "rubric")
    graded = [i for i, c in enumerate(cases) if c.rubric]
    if not graded:
        return {"enabled": True, "note": "no case carries a rubric"}
    return {"enabled": True, "models": {
        m: healthbench.grade(cases=[cases[i] for i in graded], responses=[responses[m][i] for i in graded],
                             grader=cfg.rubric.grader, store_dir=out / "rubric" / m, n_bootstrap=cfg.n_bootstrap,
                             seed=cfg.seed, progress=ctx.progress)
        for m in checkpoints}}


def multi_turn_section(cases: list[Case], checkpoints: dict[str, str], cfg: EvalRunConfig, out: Path, ctx) -> dict:
    """Conversations with a simulated patient on the cases that carry a case card
    (alignment.evaluation.patient)."""
    if not cfg.multi_turn.enabled:
        return {"enabled": False}
    patient = _optional_module("patient", "multi_turn")
    carded = [c for c in cases if c.case_card]
    if not carded:
        return {"enabled": True, "note": "no case carries a case card"}
    return {"enabled": True, "models": {
        m: patient.run_conversations(cases=carded, model=ref, patient=cfg.multi_turn.patient,
                                     max_turns=cfg.multi_turn.max_turns, sampling=cfg.sampling, seed=cfg.seed,
                                     store_dir=out / "multi_turn" / m, ctx=ctx)
        for m, ref in checkpoints.items()}}


def _optional_module(name: str, switch: str):
    """``alignment.evaluation.<name>`` for a switched-on section, or a UserError saying what to do."""
    import importlib

    try:
        return importlib.import_module(f"alignment.evaluation.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"alignment.evaluation.{name}":
            raise
        raise UserError(f"{switch}.enabled: true needs alignment.evaluation.{name}, which is not installed "
                        f"here; set {switch}.enabled: false") from None


def cost_table(models: list[str], generation: dict, referee_section_: dict) -> dict:
    """Per model: generation (new, cached, wall s) and the judge calls of its pairs (API calls
    made in this run, cache hits, wall s; a pair's calls count for both of its models)."""
    out = {}
    for m in models:
        runs = [v for k, v in (referee_section_.get("runs") or {}).items() if m in k.split(" vs ")]
        out[m] = {"generated": generation[m]["generated"], "generation_cached": generation[m]["cached"],
                  "generation_wall_s": generation[m]["wall_s"],
                  "judge_calls": sum(r["api_calls"] for r in runs), "judge_cache_hits": sum(r["cache_hits"] for r in runs),
                  "judge_already_done": sum(r["already_done"] for r in runs),
                  "judge_wall_s": round(sum(r["wall_s"] for r in runs), 3)}
    return out
