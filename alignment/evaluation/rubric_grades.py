"""The rubric section of an evaluation: every model's answer to each case that carries a rubric
(HealthBench's format; the synthetic sets carry the demo world's) graded criterion by criterion
(healthbench.py), per model overall, by axis and by theme, per set, and paired between models.

    section = rubric_section(sets, responses, models, cfg, out_dir, ctx)

Each model's grading goes to ``out_dir/rubric/<model>/`` (``rubric_transcripts.jsonl``: every
grader call; ``rubric_grades.jsonl``: per example its score and each criterion's verdict); the
grader's calls are cached by content, so a second run makes none and adding a model grades only
its answers. Section (report.json ``rubric``): ``cases`` (the first ``max_cases`` cases with a
rubric of each set), per model ``all`` (healthbench.aggregate: ``overall``, ``by_axis``,
``by_theme``, ``healthbench_mean``, scored / incomplete counts, ``criterion_statuses``,
``calls``) and ``sets``; ``paired``: model A's score minus model B's over the examples scored
for both, with a 95% bootstrap interval over examples.
"""

from __future__ import annotations

from pathlib import Path

from alignment.evaluation import referee
from alignment.evaluation.cases import Case, EvalSet
from alignment.evaluation.healthbench import aggregate, example_from_case, grade
from alignment.metrics.stats import paired_difference


def rubric_cases(sets: list[EvalSet], max_cases: int | None) -> list[Case]:
    """The first ``max_cases`` cases with a rubric of each set (all when None), in set order."""
    out = []
    for s in sets:
        out += [c for c in s.cases if c.rubric][:max_cases]
    return out


def paired_scores(graded_a: list[dict], graded_b: list[dict], n_bootstrap: int, seed: int) -> dict:
    """A's example score minus B's over the examples scored for both: ``{diff, ci_low, ci_high, n}``."""
    both = [(a["score"], b["score"]) for a, b in zip(graded_a, graded_b)
            if a["status"] == "scored" and b["status"] == "scored"]
    return paired_difference([x for x, _ in both], [y for _, y in both], n_bootstrap, seed=seed)


def rubric_section(sets: list[EvalSet], responses: dict[str, dict[str, str]], models: list[str], cfg,
                   out: Path, ctx) -> dict:
    """The section of report.json (module doc). ``responses``: model -> case key -> its answer;
    ``cfg``: the run's EvalRunConfig."""
    spec = cfg.rubric
    if not spec.enabled:
        return {"enabled": False}
    cases = rubric_cases(sets, spec.max_cases)
    if not cases:
        return {"enabled": True, "note": "no case carries a rubric"}
    examples = [example_from_case(c) for c in cases]
    set_names = list(dict.fromkeys(c.eval_set for c in cases))
    section, graded = {}, {}
    for m in models:
        ctx.logger.info("eval: grading %s's answers to %d cases on their rubrics", m, len(cases))
        report = grade(examples, [responses[m][c.key] for c in cases], spec.grader, out / "rubric" / m,
                       progress=ctx.progress, n_resamples=cfg.n_bootstrap, seed=cfg.seed)
        graded[m] = report.pop("graded")
        section[m] = {"all": report, "grades": str(out / "rubric" / m / "rubric_grades.jsonl"),
                      "sets": {s: aggregate([g for g, c in zip(graded[m], cases) if c.eval_set == s],
                                            n_resamples=cfg.n_bootstrap, seed=cfg.seed) for s in set_names}}
    pairs = referee.model_pairs(models, cfg.referee.pairs, cfg.referee.baseline) if len(models) > 1 else []
    return {"enabled": True, "grader": {"model": spec.grader.model, "endpoint": spec.grader.endpoint_identity()},
            "cases": len(cases), "sets": set_names, "models": section,
            "paired": {f"{a} vs {b}": paired_scores(graded[a], graded[b], cfg.n_bootstrap, cfg.seed)
                       for a, b in pairs}}
