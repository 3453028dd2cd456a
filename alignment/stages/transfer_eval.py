"""Stage ``transfer_eval``: does training on a large source first help on a small target set?

MedDialog's transfer experiment (Zeng et al., 2020): models pretrained on MedDialog-CN, then
fine-tuned on CovidDialog (1,088 consultations), against the same models trained on CovidDialog
alone. Here, on the target's held-out consultations (``prompts/<split>`` of the target data
stage: the history, and the doctor's reply as the reference), for each model:

* perplexity of the doctor's reply given the history (``alignment.likelihood``);
* BLEU-1/2/4 of the model's own reply against the doctor's, and Distinct-1/2 of its replies;
* clinical accuracy: the share of prompts whose doctor named one target condition where the
  model's reply names that condition and no other (``alignment.metrics.diagnosis``);

each with a 95% bootstrap interval over prompts, and the **transfer gain** (transfer model minus
target-only model, perplexity: target-only minus transfer; positive: transfer is better) with a
paired bootstrap interval (``alignment.metrics.resample``). An optional ``source_only`` model (the
source model without fine-tuning) shows what the target set itself adds.

Inputs: ``data`` (target data stage), ``transfer``, ``target_only``, optionally ``source_only``
(checkpoints; every one defaults to the job's first ``sft`` stage, so a job names them:
``inputs: {data: data_target, transfer: sft_target, target_only: sft_target_only}``).
Outputs: ``transfer_eval.json`` (every figure), ``generations.parquet`` (per prompt: reference,
each model's reply, reply NLL and tokens, the diagnosis truth and each model's verdict).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from pydantic import Field

from alignment.generation import SamplingSpec
from alignment.models import DType
from alignment.specs import MaxLength
from alignment.stages.inputs import Quarantine, load_prompt_split
from medalign.config import StrictModel
from medalign.errors import UserError
from medalign.stage import Input, StageContext

NAME = "transfer_eval"
MODELS = ("transfer", "target_only", "source_only")
INPUTS = {"data": Input(("data",), "target data stage directory (prompts/ with references)", reads=("prompts",)),
          "transfer": Input(("sft",), "trained on the source, then fine-tuned on the target", model=True),
          "target_only": Input(("sft",), "trained on the target only, with the same budget", model=True),
          "source_only": Input(("sft",), "trained on the source only (how far it gets without the target)",
                               model=True, optional=True)}


class TransferEvalConfig(StrictModel):
    """Held-out figures of the transfer, target-only (and source-only) models on the target set."""

    split: str = "test"                                   # prompts/<split>.parquet of the target data
    max_prompts: int | None = Field(None, ge=1)           # first N prompts (None: all)
    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(temperature=0.0, max_new_tokens=64,
                                                                        batch_size=32))  # greedy replies for BLEU
    max_length: MaxLength = 1024                          # tokens of history + reply for perplexity (keeps the end)
    score_batch_size: int = Field(16, ge=1)               # conversations per forward for perplexity
    target_conditions: str | None = "outbreak"            # clinical accuracy: 'outbreak' (demo family), a names YAML, or None
    n_bootstrap: int = Field(2000, ge=100)                # bootstrap resamples for every interval
    dtype: DType = "auto"                                 # generation / scoring dtype
    seed: int | None = None                               # None: the job seed


Config = TransferEvalConfig

# figures that are a ratio of two summed columns -> their column group
_RATIO_FIGURES = {"distinct_1": "distinct_1", "distinct_2": "distinct_2", "diagnosis_accuracy": "diagnosis"}


def _bleu_k(sums, k: int) -> float:
    """BLEU-k from summed 4-gram ``bleu_counts`` (columns m1..m4, t1..t4, hyp_len, ref_len)."""
    from alignment.metrics.overlap import bleu_of_sums

    return bleu_of_sums([*sums[:k], *sums[4: 4 + k], sums[8], sums[9]], k)


def figure_specs() -> dict:
    """figure name -> (column group of the per-item rows, statistic of their sums, higher is better)."""
    from alignment.metrics.resample import perplexity_of_sums, ratio_of_sums

    specs = {"perplexity": ("nll", perplexity_of_sums, False)}
    specs.update({f"bleu_{k}": ("bleu", partial(_bleu_k, k=k), True) for k in (1, 2, 4)})
    specs.update({name: (group, ratio_of_sums, True) for name, group in _RATIO_FIGURES.items()})
    return specs


def per_item_rows(histories: list, references: list[str], replies: list[str], nll: list[tuple[float, int]],
                  matcher) -> dict[str, list]:
    """One model's per-prompt sufficient statistics, by column group (see :func:`figure_specs`)."""
    from alignment.metrics.diagnosis import diagnosis_rows
    from alignment.metrics.diversity import distinct_shares
    from alignment.metrics.overlap import bleu_counts

    rows = {"nll": [list(x) for x in nll],
            "bleu": [bleu_counts(h, r, 4) for h, r in zip(replies, references)],
            "distinct_1": [list(x) for x in distinct_shares(replies, 1)],
            "distinct_2": [list(x) for x in distinct_shares(replies, 2)]}
    rows["diagnosis"] = diagnosis_rows(replies, references, matcher) if matcher else [[0, 0] for _ in replies]
    return rows


def _model_outputs(ref: str, role: str, prompts: list[dict], cfg: TransferEvalConfig, seed: int,
                   ctx: StageContext) -> tuple[list[str], list[tuple[float, int]], str]:
    """A model's greedy replies, the NLL of the references, and its vocabulary's fingerprint."""
    import hashlib

    from alignment.generation import generate_responses
    from alignment.likelihood import reply_nll
    from alignment.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(ref, role)
    model = load_causal_lm(ref, role, device=ctx.device, dtype=cfg.dtype)
    histories = [p["messages"] for p in prompts]
    replies = [g[0].text for g in generate_responses(model, tokenizer, histories, cfg.sampling, k=1, seed=seed,
                                                     progress=ctx.progress, desc=f"replies ({role})")]
    nll = reply_nll(model, tokenizer, histories, [p["reference"] for p in prompts], cfg.max_length,
                    cfg.score_batch_size, ctx.progress)
    vocab = hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()[:16]
    return replies, nll, vocab


def summarise(rows: dict[str, dict[str, list]], cfg: TransferEvalConfig, seed: int, same_tokenizer: bool) -> dict:
    """Figures per model with intervals, and the gains of ``transfer`` over the others."""
    from alignment.metrics.resample import interval_of_sums, paired_gain

    specs = figure_specs()
    figures = {m: {name: interval_of_sums(r[group], stat, cfg.n_bootstrap, seed=seed)
                   for name, (group, stat, _) in specs.items()} for m, r in rows.items()}
    gains = {}
    for other in (m for m in rows if m != "transfer"):
        gains[other] = {}
        for name, (group, stat, higher) in specs.items():
            if name == "perplexity" and not same_tokenizer:
                gains[other][name] = {"gain": None, "reason": "the models have different tokenizers: "
                                      "their per-token perplexities do not compare"}
                continue
            gains[other][name] = paired_gain(rows["transfer"][group], rows[other][group], stat, higher,
                                             cfg.n_bootstrap, seed=seed)
    return {"figures": figures, "gains_of_transfer_over": gains}


def run(cfg: TransferEvalConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    from alignment.distributed import is_main_process
    from alignment.metrics.diagnosis import condition_matcher

    if not is_main_process():
        return {}
    out = Path(out)
    models = {m: inputs[m] for m in MODELS if inputs.get(m)}
    if len(set(models.values())) < len(models):
        raise UserError(f"{NAME}: two of its model inputs are the same checkpoint ({models}); name them in "
                        f"the job: inputs: {{transfer: <stage>, target_only: <stage>}}")
    quarantine = Quarantine()
    prompts = load_prompt_split(inputs["data"], cfg.split, quarantine, cfg.max_prompts, NAME)
    without = [p for p in prompts if not p.get("reference")]
    prompts = [p for p in prompts if p.get("reference")]
    if not prompts:
        raise UserError(f"{NAME}: no prompt of {inputs['data']}/prompts/{cfg.split}.parquet has a reference")
    matcher = condition_matcher(cfg.target_conditions) if cfg.target_conditions else None
    seed = ctx.seed if cfg.seed is None else cfg.seed
    replies, rows, vocabs = {}, {}, {}
    for m, ref in models.items():
        replies[m], nll, vocabs[m] = _model_outputs(ref, m, prompts, cfg, seed, ctx)
        rows[m] = per_item_rows([p["messages"] for p in prompts], [p["reference"] for p in prompts],
                                replies[m], nll, matcher)
    report = summarise(rows, cfg, seed, same_tokenizer=len(set(vocabs.values())) == 1)
    report.update(prompts=len(prompts), prompts_without_reference=len(without), quarantined=len(quarantine),
                  diagnosis_prompts=sum(c for _, c in rows["transfer"]["diagnosis"]),
                  target_conditions=cfg.target_conditions, models=models, split=cfg.split)
    _write_generations(out, prompts, replies, rows, matcher)
    (out / "transfer_eval.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=float),
                                            encoding="utf-8")
    quarantine.write(out)
    return headline_metrics(report)


def _write_generations(out: Path, prompts: list[dict], replies: dict, rows: dict, matcher) -> None:
    import pandas as pd

    from alignment.metrics.diagnosis import diagnosis_truth

    table = []
    for i, p in enumerate(prompts):
        row = {"prompt_id": p["prompt_id"], "messages": p["messages"], "reference": p["reference"],
               "diagnosis_truth": diagnosis_truth(p["reference"], matcher) if matcher else None}
        for m in replies:
            nll, tokens = rows[m]["nll"][i]
            correct, counted = rows[m]["diagnosis"][i]
            row.update({f"{m}_reply": replies[m][i], f"{m}_reply_nll": nll, f"{m}_reference_tokens": tokens,
                        f"{m}_diagnosis_correct": bool(correct) if counted else None})
        table.append(row)
    pd.DataFrame(table).to_parquet(out / "generations.parquet", index=False)


def headline_metrics(report: dict) -> dict:
    """The manifest's metrics: every figure and gain flat (``bleu_4_transfer``, ``gain_bleu_4``,
    ``gain_bleu_4_ci``), and ``figures``: rows for the report's table of figures with intervals."""
    metrics: dict = {"prompts": report["prompts"], "diagnosis_prompts": report["diagnosis_prompts"]}
    rows = []
    for model, figures in report["figures"].items():
        for name, f in figures.items():
            metrics[f"{name}_{model}"] = f["value"]
            rows.append({"figure": name, "model": model, "value": f["value"], "ci": [f["ci_low"], f["ci_high"]],
                         "n": f["n"]})
    for other, gains in report["gains_of_transfer_over"].items():
        suffix = "" if other == "target_only" else f"_over_{other}"
        for name, g in gains.items():
            metrics[f"gain_{name}{suffix}"] = g["gain"]
            metrics[f"gain_{name}{suffix}_ci"] = [g.get("ci_low"), g.get("ci_high")]
            rows.append({"figure": f"gain in {name}", "model": f"transfer over {other}", "value": g["gain"],
                         "ci": [g.get("ci_low"), g.get("ci_high")], "n": g.get("n")})
    metrics["figures"] = rows
    return metrics


def plan_problems(cfg: TransferEvalConfig) -> list[str]:
    """A names file given as ``target_conditions`` must exist and be valid (checked when a job is planned)."""
    from alignment.metrics.diagnosis import condition_matcher
    from medalign.config import ConfigError

    if cfg.target_conditions is None:
        return []
    try:
        condition_matcher(cfg.target_conditions)
    except FileNotFoundError as e:
        return [str(e)]
    except ConfigError as e:
        return [f"target_conditions: {p}" for p in e.problems]
    return []
