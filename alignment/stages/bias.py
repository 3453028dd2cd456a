"""Stage ``bias``: attitude scales put to each model, bias scores with intervals, models compared.

ChiMed-GPT's bias analysis: each statement of an attitude scale (``alignment/bias/scale.py``) is
put to the model in the scale's prompt; the answer is parsed to one of the scale's options
(``alignment/bias/answers.py``; a refusal, a hedge or an echoed option list is a non-answer,
counted and never scored); each answer becomes an item score by the scale's rule (reversed items
included); the bias score is their mean, with a 95% bootstrap interval over statements, and
every pair of respondents is compared on the statements both answered (paired interval).

Respondents: the model inputs present in the job (``sft``, ``ppo``, ``rsft``, ``dpo``,
``online_rl``: e.g. SFT vs PPO vs RSFT; any checkpoint path may be given to any of them), and the
config's ``respondents``: OpenAI-compatible endpoints, or the demo rules that make the pipeline
testable without a model that can answer. The shipped scales are demos written for medalign in
the style of CAMI (40 statements, 5-point) and MICA (16 statements, 6-point), not the published
instruments: point ``scales`` at the scale files you hold.

Outputs: ``bias.json`` (per scale: each respondent's score, interval, answered and non-answer
counts; the comparisons), ``answers.parquet`` (every prompt, raw answer, parsed option, score).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field

from alignment.bias.respondents import RespondentSpec
from alignment.bias.scale import DEMO_SCALES
from alignment.generation import SamplingSpec
from alignment.models import DType
from medalign.config import StrictModel
from medalign.errors import UserError
from medalign.stage import Input, StageContext

NAME = "bias"
MODEL_INPUTS = ("sft", "ppo", "rsft", "dpo", "online_rl")
INPUTS = {kind: Input((kind,), f"a {kind} checkpoint to put the scales to (its name in the report: {kind})",
                      model=True, optional=True) for kind in MODEL_INPUTS}


class BiasStageConfig(StrictModel):
    """Which scales, in which language, to whom, and how models decode their answers."""

    scales: list[str] = Field(default_factory=lambda: list(DEMO_SCALES), min_length=1)  # scale files (or names in alignment/bias/scales/)
    language: Literal["zh", "en"] = "zh"                 # the language statements are asked in
    respondents: list[RespondentSpec] = Field(default_factory=list)  # endpoints / demo rules besides the model inputs
    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(temperature=0.0, max_new_tokens=32,
                                                                        batch_size=32))  # checkpoints' answers
    n_bootstrap: int = Field(2000, ge=100)                # bootstrap resamples for every interval
    max_api_error_fraction: float = Field(0.1, ge=0, le=1)  # more failed endpoint calls than this: the stage failed
    dtype: DType = "auto"                                 # checkpoint dtype
    seed: int | None = None                               # None: the job seed


Config = BiasStageConfig


def input_files(cfg: BiasStageConfig) -> list[Path]:
    """The scale files and the answer cues: their content enters the stage key."""
    from alignment.bias.answers import CUES_FILE
    from alignment.bias.scale import find_scale

    return [find_scale(s) for s in cfg.scales] + [CUES_FILE]


def accept(cfg: BiasStageConfig, metrics: dict) -> list[str]:
    """An endpoint that failed too often measured nothing: the stage fails (non-answers do not count)."""
    asked, errors = metrics.get("asked") or 0, metrics.get("api_errors") or 0
    if asked and errors / asked > cfg.max_api_error_fraction:
        return [f"{errors} of {asked} questions got an API error, more than max_api_error_fraction "
                f"{cfg.max_api_error_fraction:g}"]
    return []


def _questions(scales: list, lang: str) -> list:
    from alignment.bias.respondents import Question

    return [Question(prompt=scale.render(s, lang), stigmatising=s.stigmatising,
                     agree_label=scale.options[0].labels[lang][0], disagree_label=scale.options[-1].labels[lang][0],
                     lang=lang)
            for scale in scales for s in scale.statements]


def _answers(name: str, ref_or_spec, questions: list, cfg: BiasStageConfig, seed: int, ctx: StageContext) -> list:
    from alignment.bias.respondents import checkpoint_answers, endpoint_answers, rule_answers

    if isinstance(ref_or_spec, str):
        return checkpoint_answers(ref_or_spec, name, questions, cfg.sampling, seed, cfg.dtype, ctx.device,
                                  ctx.progress)
    if ref_or_spec.rule is not None:
        return rule_answers(ref_or_spec.rule, questions)
    return endpoint_answers(ref_or_spec, questions, ctx.progress)


def run(cfg: BiasStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    from alignment.bias.scale import load_scale
    from alignment.distributed import is_main_process

    if not is_main_process():
        return {}
    scales = [load_scale(s) for s in cfg.scales]
    missing = [s.name for s in scales if cfg.language not in s.languages]
    if missing:
        raise UserError(f"{NAME}: scale(s) {missing} have no {cfg.language} text; set language or pick other scales")
    respondents: dict = {m: inputs[m] for m in MODEL_INPUTS if inputs.get(m)}
    for spec in cfg.respondents:
        if spec.name in respondents:
            raise UserError(f"{NAME}: respondent name {spec.name!r} is used twice (model inputs are named by kind)")
        respondents[spec.name] = spec
    if not respondents:
        raise UserError(f"{NAME}: nobody to ask: no model input (sft, ppo, rsft, dpo, online_rl) in the job and "
                        f"no respondents in the config")
    seed = ctx.seed if cfg.seed is None else cfg.seed
    questions = _questions(scales, cfg.language)
    answers = {name: _answers(name, who, questions, cfg, seed, ctx) for name, who in respondents.items()}
    report, table = summarise(scales, cfg.language, questions, answers, cfg.n_bootstrap, seed)
    _write_answers(out, table)
    (Path(out) / "bias.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=float),
                                         encoding="utf-8")
    return headline_metrics(report)


def summarise(scales: list, lang: str, questions: list, answers: dict[str, list], n_bootstrap: int,
              seed: int) -> tuple[dict, list[dict]]:
    """``bias.json``'s content and the rows of ``answers.parquet``."""
    from alignment.bias.scoring import bias_summary, compare, item_records

    report: dict = {"language": lang, "scales": {}}
    table: list[dict] = []
    start = 0
    for scale in scales:
        n = len(scale.statements)
        records = {name: item_records(scale, lang, a[start: start + n]) for name, a in answers.items()}
        names = list(records)
        report["scales"][scale.name] = {
            "note": scale.note, "statements": n,
            "respondents": {name: bias_summary(r, scale, n_bootstrap, seed) for name, r in records.items()},
            "comparisons": [{"a": a, "b": b, **compare(records[a], records[b], n_bootstrap, seed)}
                            for i, a in enumerate(names) for b in names[i + 1:]]}
        for name, recs in records.items():
            table += [{"respondent": name, "scale": scale.name, "prompt": q.prompt, **r}
                      for q, r in zip(questions[start: start + n], recs)]
        start += n
    return report, table


def _write_answers(out: Path, table: list[dict]) -> None:
    import pandas as pd

    pd.DataFrame(table).to_parquet(Path(out) / "answers.parquet", index=False)


def headline_metrics(report: dict) -> dict:
    """Flat metrics (``bias_<scale>_<respondent>``, ``answered_...``) and ``figures`` rows for the report."""
    metrics: dict = {"asked": 0, "api_errors": 0, "non_answers": 0, "figures": []}
    for scale, section in report["scales"].items():
        for name, s in section["respondents"].items():
            metrics[f"bias_{scale}_{name}"] = s["bias_score"]
            metrics[f"answered_{scale}_{name}"] = s["answered"]
            metrics["asked"] += s["asked"]
            metrics["api_errors"] += s["api_errors"]
            metrics["non_answers"] += sum(s["non_answers"].values())
            metrics["figures"].append({"figure": f"bias score ({scale})", "model": name, "value": s["bias_score"],
                                       "ci": [s["ci_low"], s["ci_high"]], "n": s["answered"]})
        for c in section["comparisons"]:
            metrics["figures"].append({"figure": f"bias difference ({scale})", "model": f"{c['a']} - {c['b']}",
                                       "value": c["difference"], "ci": [c["ci_low"], c["ci_high"]],
                                       "n": c["statements"]})
    metrics["respondents"] = len(next(iter(report["scales"].values()))["respondents"])
    return metrics


def plan_problems(cfg: BiasStageConfig) -> list[str]:
    """Every scale must be found, be valid, and hold the asked language (checked when a job is planned)."""
    from alignment.bias.scale import load_scale
    from medalign.config import ConfigError

    problems = []
    for i, path in enumerate(cfg.scales):
        try:
            scale = load_scale(path)
        except FileNotFoundError as e:
            problems.append(f"scales.{i}: {e}")
            continue
        except ConfigError as e:
            problems += [f"scales.{i}: {p}" for p in e.problems]
            continue
        if cfg.language not in scale.languages:
            problems.append(f"scales.{i}: scale {scale.name} has no {cfg.language} text (it has "
                            f"{', '.join(scale.languages)}); set language")
    return problems
