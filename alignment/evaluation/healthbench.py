"""Rubric grading in HealthBench's format (OpenAI, 2025; issue 10 §5).

HealthBench's JSONL has one example a line: ``prompt`` (chat messages ending with the user's
turn), ``rubrics`` (physician-written ``{criterion, points, tags}``; negative points for what a
response must not do; tags such as ``axis:accuracy``, ``level:example``), ``example_tags``
(``theme:emergency_referrals``, ...) and ``prompt_id``.

    examples, quarantined = read_healthbench("healthbench.jsonl")   # bad lines: file, line, field
    report = grade(examples, responses, grader_cfg, store_dir=out / "rubric")

:func:`grade` asks the grader (any OpenAI-compatible endpoint through the judges engine, or the
local server's ``medalign-grader`` for the demo rubric) whether each criterion is met, one call
per criterion (:mod:`alignment.evaluation.healthbench_grader`). An example's score is points
achieved / positive points possible, clipped to [0, 1]; its score on a tag (an axis) the same
over the criteria with that tag. An example with any criterion whose call is not ``ok`` is
**incomplete**: counted and reported, never scored as if the criterion were unmet. Scores are
aggregated overall, by axis (criterion tags ``axis:*``) and by theme (example tags
``theme:*``), each with a 95% bootstrap interval over examples; ``healthbench_mean`` is also
given as HealthBench's own code computes it (the mean of unclipped scores, then clipped).

Outputs in ``store_dir``: ``rubric_transcripts.jsonl`` (every grader call, hash-chained),
``rubric_grades.jsonl`` (per example: score, status, each criterion's verdict and explanation).
Eval cases with a ``rubric`` column (the synthetic sets carry the demo world's,
:func:`data_recipes.synthetic.rubrics.demo_rubric`) become examples with :func:`example_from_case`.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from alignment.evaluation.cases import Case
from alignment.evaluation.healthbench_grader import (PARSER_VERSION, explanation_of,
                                                     grader_messages, load_grader_template,
                                                     parse_grader_reply)
from alignment.evaluation.judge_calls import Call, CallSession, summarize_runs
from alignment.metrics.stats import bootstrap_ci
from data_recipes.readers.streams import iter_jsonl, quarantine
from data_recipes.records import Quarantined
from data_recipes.transforms.pii import ALL_KINDS, scrub_text
from judges.config import JudgeConfig
from medalign.errors import UserError

TRANSCRIPT = "rubric_transcripts.jsonl"
GRADES = "rubric_grades.jsonl"
ROLES = ("system", "user", "assistant")
__all__ = ["RubricItem", "HealthBenchExample", "read_healthbench", "example_from_case", "grade",
           "example_score", "aggregate"]


@dataclass
class RubricItem:
    criterion: str
    points: float                         # negative: something the response must not do
    tags: list[str] = field(default_factory=list)


@dataclass
class HealthBenchExample:
    prompt_id: str
    prompt: list[dict]                    # chat messages ending with the user's turn
    rubrics: list[RubricItem]
    example_tags: list[str] = field(default_factory=list)
    language: str = "en"                  # the grader prompt's language (HealthBench's: en)
    source: str | None = None             # "file:line" it was read from


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

def _messages_problem(prompt) -> str | None:
    if not isinstance(prompt, list) or not prompt:
        return "prompt: expected a non-empty list of {role, content} messages"
    for i, m in enumerate(prompt):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return f"prompt.{i}.role: expected one of {', '.join(ROLES)}"
        if not isinstance(m.get("content"), str):
            return f"prompt.{i}.content: expected text"
    if prompt[-1]["role"] != "user":
        return "prompt: the last message must be the user's turn"
    return None


def _rubric_problem(rubrics) -> str | None:
    if not isinstance(rubrics, list) or not rubrics:
        return "rubrics: expected a non-empty list of {criterion, points, tags}"
    for i, r in enumerate(rubrics):
        if not isinstance(r, dict):
            return f"rubrics.{i}: expected an object with criterion, points, tags"
        if not isinstance(r.get("criterion"), str) or not r["criterion"].strip():
            return f"rubrics.{i}.criterion: expected non-empty text"
        points = r.get("points")
        if isinstance(points, bool) or not isinstance(points, (int, float)) or not math.isfinite(points):
            return f"rubrics.{i}.points: expected a finite number, got {points!r}"
        tags = r.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            return f"rubrics.{i}.tags: expected a list of strings"
    if not any(r["points"] > 0 for r in rubrics):
        return "rubrics: no criterion with positive points (the score would divide by zero)"
    return None


def _example_problem(value) -> str | None:
    if not isinstance(value, dict):
        return "expected a JSON object per line"
    if not isinstance(value.get("prompt_id"), str) or not value["prompt_id"]:
        return "prompt_id: expected non-empty text"
    tags = value.get("example_tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return "example_tags: expected a list of strings"
    return _messages_problem(value.get("prompt")) or _rubric_problem(value.get("rubrics"))


def _scrubbed(item: Quarantined) -> dict:
    """A quarantine record: file, line, reason, the line's text scrubbed of personal data."""
    text = scrub_text(item.raw, frozenset(ALL_KINDS), Counter())
    return {"file": item.source_file, "line": item.source_line, "reason": item.reason,
            "text": text, "scrubbed": True}


def read_healthbench(path: str | Path) -> tuple[list[HealthBenchExample], list[dict]]:
    """The usable examples of a HealthBench JSONL file, and the quarantined lines (each with
    file, line, the field at fault and the line's text scrubbed of personal data)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: HealthBench file not found (a JSONL file of examples with "
                        "prompt, rubrics, example_tags, prompt_id)")
    examples, bad, seen = [], [], {}
    for item in iter_jsonl(path):
        if isinstance(item, Quarantined):
            bad.append(_scrubbed(item))
            continue
        line, value, raw = item
        problem = _example_problem(value)
        if problem is None and value["prompt_id"] in seen:
            problem = f"prompt_id: {value['prompt_id']!r} repeats line {seen[value['prompt_id']]}"
        if problem is not None:
            bad.append(_scrubbed(quarantine(path, line, problem, raw)))
            continue
        seen[value["prompt_id"]] = line
        examples.append(HealthBenchExample(
            value["prompt_id"], value["prompt"],
            [RubricItem(r["criterion"], float(r["points"]), list(r.get("tags", [])))
             for r in value["rubrics"]],
            list(value.get("example_tags", [])), source=f"{path}:{line}"))
    return examples, bad


def example_from_case(case: Case) -> HealthBenchExample:
    """A HealthBench example from an eval case with a ``rubric`` (``prompt_id``: the case's key).
    Example tags: ``theme:context_seeking`` for cases missing key information (HealthBench's
    theme of asking for what is missing), else ``theme:complete_information``; and the case's
    category."""
    rubric = [c.model_dump() for c in case.rubric or []]
    if problem := _rubric_problem(rubric) or _messages_problem(case.messages):
        raise UserError(f"eval case {case.key}: {problem.replace('prompt', 'messages', 1)}")
    missing = case.truth is not None and case.truth.missing_info
    tags = [f"theme:{'context_seeking' if missing else 'complete_information'}"]
    tags += [f"category:{case.category}"] if case.category else []
    return HealthBenchExample(case.key, [dict(m) for m in case.messages],
                              [RubricItem(r["criterion"], float(r["points"]), list(r["tags"])) for r in rubric],
                              tags, case.language or "en")


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------

def example_score(items: list[RubricItem], met: list[bool]) -> float | None:
    """Points achieved / positive points possible, clipped to [0, 1]; None without positives."""
    possible = sum(i.points for i in items if i.points > 0)
    if possible <= 0:
        return None
    achieved = sum(i.points for i, m in zip(items, met, strict=True) if m)
    return min(1.0, max(0.0, achieved / possible))


def tag_scores(items: list[RubricItem], met: list[bool], prefix: str = "axis:") -> dict[str, float]:
    """The example's score over the criteria of each tag starting with ``prefix``."""
    tags = sorted({t for i in items for t in i.tags if t.startswith(prefix)})
    out = {}
    for tag in tags:
        pairs = [(i, m) for i, m in zip(items, met) if tag in i.tags]
        score = example_score([i for i, _ in pairs], [m for _, m in pairs])
        if score is not None:
            out[tag] = score
    return out


def _stat(values: list[float], n_resamples: int, seed: int) -> dict:
    ci = bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
    return {"score": sum(values) / len(values) if values else None,
            "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "n": len(values)}


def aggregate(graded: list[dict], *, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Overall, by-axis and by-theme scores (95% bootstrap intervals) of graded examples."""
    scored = [g for g in graded if g["status"] == "scored"]
    overall = [g["score"] for g in scored]
    raw = [g["unclipped_score"] for g in scored]
    by_axis: dict[str, list[float]] = {}
    by_theme: dict[str, list[float]] = {}
    for g in scored:
        for tag, s in g["axis_scores"].items():
            by_axis.setdefault(tag.removeprefix("axis:"), []).append(s)
        for tag in g["example_tags"]:
            if tag.startswith("theme:"):
                by_theme.setdefault(tag.removeprefix("theme:"), []).append(g["score"])
    return {"examples": len(graded), "scored": len(scored), "incomplete": len(graded) - len(scored),
            "overall": _stat(overall, n_resamples, seed),
            "healthbench_mean": min(1.0, max(0.0, sum(raw) / len(raw))) if raw else None,
            "by_axis": {k: _stat(v, n_resamples, seed) for k, v in sorted(by_axis.items())},
            "by_theme": {k: _stat(v, n_resamples, seed) for k, v in sorted(by_theme.items())}}


# --------------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------------

def _calls(examples: list[HealthBenchExample], responses: list[str], template) -> list[Call]:
    calls = []
    for ex, response in zip(examples, responses):
        conversation = ex.prompt + [{"role": "assistant", "content": response}]
        for i, item in enumerate(ex.rubrics):
            calls.append(Call(f"{ex.prompt_id}#c{i}", grader_messages(
                template, conversation, item.criterion, item.points, ex.language), ex.language,
                shown={"A": response}, shown_ids={"A": f"{ex.prompt_id}#response"},
                tags={"criterion": str(i)}))
    return calls


def _criterion(item: RubricItem, result) -> dict:
    """One criterion's verdict: met or not, and why; None when its call is not ok."""
    ok = result.status == "ok"
    met = parse_grader_reply(result.text).scores["A"] == 1.0 if ok else None
    return {**asdict(item), "status": result.status, "judgment_id": result.judgment_id,
            "criteria_met": met, "explanation": explanation_of(result.text) if ok else None,
            "error": None if ok else result.error, "flags": result.flags}


def _graded(ex: HealthBenchExample, results: list) -> dict:
    criteria = [_criterion(item, r) for item, r in zip(ex.rubrics, results)]
    row = {"prompt_id": ex.prompt_id, "example_tags": ex.example_tags, "criteria": criteria,
           "status": "scored", "score": None, "unclipped_score": None, "axis_scores": {}}
    if any(c["status"] != "ok" for c in criteria):
        row["status"] = "incomplete"
        return row
    met = [c["criteria_met"] for c in criteria]
    row["score"] = example_score(ex.rubrics, met)
    possible = sum(i.points for i in ex.rubrics if i.points > 0)
    row["unclipped_score"] = sum(i.points for i, m in zip(ex.rubrics, met) if m) / possible
    row["axis_scores"] = tag_scores(ex.rubrics, met)
    return row


def grade(examples: list[HealthBenchExample], responses: list[str], grader: JudgeConfig,
          store_dir: str | Path, *, progress: bool = False, n_resamples: int = 2000,
          seed: int = 0) -> dict:
    """Grade ``responses[i]`` (the answer to ``examples[i]``) on its rubric; returns the report
    (aggregate, per-example rows in ``graded``, grader ``calls``). ``grader.template`` may be a
    YAML path of a grader template; otherwise the built-in one is used."""
    if len(responses) != len(examples):
        raise ValueError(f"{len(responses)} responses for {len(examples)} examples")
    template = load_grader_template(grader.template)
    store_dir = Path(store_dir)
    calls = _calls(examples, responses, template)
    with CallSession(grader, template, parse_grader_reply, store_dir, TRANSCRIPT, PARSER_VERSION,
                     progress) as session:
        results = session.run(calls)
    graded, at = [], 0
    for ex in examples:
        graded.append(_graded(ex, results[at:at + len(ex.rubrics)]))
        at += len(ex.rubrics)
    with open(store_dir / GRADES, "w", encoding="utf-8") as f:
        for row in graded:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    report = aggregate(graded, n_resamples=n_resamples, seed=seed)
    report["criterion_statuses"] = dict(Counter(c["status"] for g in graded for c in g["criteria"]))
    report["calls"] = {"model": grader.model, "endpoint": grader.endpoint_identity(),
                       "template_id": template.id, "template_hash": template.hash,
                       **summarize_runs(session.stats)}
    report["graded"] = graded
    return report
