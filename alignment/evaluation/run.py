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
4. rubric grading of every model's answers to the cases that carry a rubric, when
   ``rubric.enabled`` (rubric_grades.py: HealthBench's format, one grader call per criterion);
5. conversations of every model with the simulated patient on the cases that carry a case card,
   when ``multi_turn.enabled`` (multi_turn.py: ground-truth scores, paired differences, the
   referee on whole conversations);
6. the cost per model (generations, referee, patient and grader calls, cache hits), then
   ``report.json``, ``report.html`` (report.py) and ``generations.parquet`` in ``out_dir``.
"""

from __future__ import annotations

import time
from pathlib import Path

from alignment.evaluation import clinical, referee
from alignment.evaluation.cases import Case, EvalSet, load_eval_sets
from alignment.evaluation.config import EvalRunConfig
from alignment.evaluation.generations import cached_generations, resolve_checkpoint
from alignment.evaluation.leaderboard import leaderboard
from alignment.evaluation.multi_turn import multi_turn_section
from alignment.evaluation.rubric_grades import rubric_section
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
    timings, t = {}, time.perf_counter()
    responses, generation = generate_all(cfg, checkpoints, cases, out, ctx)
    write_generations(out / "generations.parquet", cases, responses)
    timings["generation"], t = round(time.perf_counter() - t, 3), time.perf_counter()
    report = {"name": cfg.name, "models": [{"name": m, "checkpoint": checkpoints[m], "digest": generation[m]["digest"]}
                                           for m in models],
              "eval_sets": [_set_info(s) for s in sets], "sampling": cfg.sampling.model_dump(mode="json"),
              "seed": cfg.seed, "generation": generation}
    report["clinical"] = clinical_section(sets, responses, models, cfg) if cfg.clinical else {"enabled": False}
    report["referee"], report["leaderboard"] = referee_section(cases, responses, models, cfg, out, ctx)
    timings["clinical_and_referee"], t = round(time.perf_counter() - t, 3), time.perf_counter()
    by_key = {m: {c.key: text for c, text in zip(cases, texts)} for m, texts in responses.items()}
    report["rubric"] = rubric_section(sets, by_key, models, cfg, out, ctx)
    timings["rubric"], t = round(time.perf_counter() - t, 3), time.perf_counter()
    report["multi_turn"] = multi_turn_section(sets, checkpoints, {m: generation[m]["digest"] for m in models},
                                              cfg, out, ctx)
    timings["multi_turn"] = round(time.perf_counter() - t, 3)
    report["cost"] = cost_table(models, generation, report)
    report["timings"] = timings
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


def _pair_runs(section: dict, model: str) -> list[dict]:
    """The judge runs of a section's pairs that involve ``model``."""
    return [v for k, v in (section.get("runs") or {}).items() if model in k.split(" vs ")]


def cost_table(models: list[str], generation: dict, report: dict) -> dict:
    """Per model: generation (new, cached, wall s), the referee calls of its pairs (API calls
    made in this run, cache hits, already done, wall s; a pair's calls count for both of its
    models) on single turns and on conversations, its patient calls and doctor turns, and its
    grader calls. "already done" calls were found ``ok`` in the transcript: no API call."""
    out = {}
    mt, rubric = report["multi_turn"], report["rubric"]
    for m in models:
        runs = _pair_runs(report["referee"], m) + _pair_runs(mt.get("referee") or {}, m)
        row = {"generated": generation[m]["generated"], "generation_cached": generation[m]["cached"],
               "generation_wall_s": generation[m]["wall_s"],
               "judge_calls": sum(r["api_calls"] for r in runs), "judge_cache_hits": sum(r["cache_hits"] for r in runs),
               "judge_already_done": sum(r["already_done"] for r in runs),
               "judge_wall_s": round(sum(r["wall_s"] for r in runs), 3)}
        if mt.get("models"):
            calls, gen = mt["models"][m]["patient_calls"], mt["models"][m]["doctor_generation"]
            row.update(patient_calls=calls["api_calls"], patient_already_done=calls["already_done"],
                       patient_cache_hits=calls["cache_hits"], patient_wall_s=calls["wall_s"],
                       doctor_generated=gen.get("generated", 0), doctor_cached=gen.get("cached", 0),
                       doctor_wall_s=gen.get("wall_s", 0.0))
        if rubric.get("models"):
            calls = rubric["models"][m]["all"]["calls"]
            row.update(grader_calls=calls["api_calls"], grader_already_done=calls["already_done"],
                       grader_cache_hits=calls["cache_hits"], grader_wall_s=calls["wall_s"])
        out[m] = row
    return out
