"""Stage ``router``: route a patient's description to a department (or a doctor), RealMedDial's
and MEDI-BERPT's task, with a classification head on the SFT (or any causal-LM) backbone.

    router:
      inputs: {backbone: sft}                  # or bootstrap, pretrain, a path or hub id
      config: {target: department, top_labels: 10, generation_weight: 0.0}

Reads the data stage's ``cases/`` (the patient's opening turns, department, doctor; build them
with ``outputs.cases`` as in ``data_recipes/recipes/routing.yaml``). Trains
``AutoModelForSequenceClassification`` on ``train_split`` over the training labels (the
``top_labels`` most frequent when set) and ranks every label for each case of ``eval_split``.
``generation_weight > 0`` trains MEDI-BERPT's multitask model: the doctor's first reply is also
generated from the shared backbone (``alignment.routing.classifier``).

Outputs: ``model/`` (the classifier with its labels in ``config.id2label``, and the tokenizer),
``predictions.parquet`` (``case_id``, ``gold``, ``ranked`` labels best first, ``probabilities``,
``hit@k`` per k) and ``routing.json``: top-k accuracy with 95% bootstrap intervals over cases,
the confusion table of the top-1 predictions per label (support, recall, precision), the cases
left out and why. ``routing_gain`` compares two routers; ``doctor_rank`` reads a doctor router.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, field_validator

from alignment.routing.cases import Target
from alignment.specs import MaxLength
from alignment.stages.training_args import OptimSpec
from alignment.tracking import TrackingSpec, check_tracking, start_tracking
from medalign.config import StrictModel
from medalign.stage import Input, StageContext

NAME = "router"
INPUTS = {"data": Input(("data",), "data stage directory (cases/)", reads=("cases",)),
          "backbone": Input(("sft", "pretrain", "bootstrap"), "causal-LM checkpoint the classification head sits on",
                            model=True)}


class RouterStageConfig(StrictModel):
    """A routing classifier on a causal-LM backbone, evaluated with top-k accuracy."""

    target: Target = "department"                    # what a case is routed to: department or doctor
    train_split: str = "train"                       # cases the classifier learns from
    eval_split: str = "test"                         # cases it is scored on
    top_labels: int | None = Field(None, ge=2)       # keep the N most frequent training labels (MEDI-BERPT: 10); None: all
    max_train_cases: int | None = Field(None, ge=1)  # train on a seeded sample of N cases (the data-scarce regime); None: all
    generation_weight: float = Field(0.0, ge=0)      # > 0: multitask, + weight x the reply's LM loss on the shared backbone
    optim: OptimSpec = Field(default_factory=lambda: OptimSpec(
        learning_rate=2e-5, epochs=3, per_device_batch_size=16, warmup_ratio=0.05))   # AdamW on head + backbone
    max_length: MaxLength = 256                      # tokens of a case (and of case + reply); longer keep their end
    top_k: list[int] = Field(default_factory=lambda: [1, 3], min_length=1)   # accuracies reported
    eval_batch_size: int = Field(32, ge=1)           # cases per forward when ranking
    bootstrap_resamples: int = Field(2000, ge=100)   # resamples of the 95% intervals over cases
    min_train_cases: int = Field(16, ge=1)           # fewer training cases with a kept label: the stage failed
    seed: int | None = None                          # None: the job seed (head init, batch order)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)  # TensorBoard (out/tensorboard) / W&B

    @field_validator("top_k")
    @classmethod
    def _positive(cls, ks: list[int]) -> list[int]:
        if any(k < 1 for k in ks):
            raise ValueError(f"top_k values must be >= 1, got {ks}")
        return sorted(set(ks))


Config = RouterStageConfig


def accept(cfg: RouterStageConfig, metrics: dict) -> list[str]:
    """A router trained on a handful of cases, or scored on none, is a failure."""
    problems = []
    if metrics.get("train_cases", 0) < cfg.min_train_cases:
        problems.append(f"trained on {metrics.get('train_cases', 0)} cases, fewer than min_train_cases "
                        f"{cfg.min_train_cases}: does the recipe make outputs.cases with {cfg.target}s?")
    if not metrics.get("eval_cases"):
        problems.append(f"no {cfg.eval_split} case has a trained {cfg.target}: nothing was scored")
    return problems


def evaluate(ranked: list[list[str]], gold: list[str], labels: list[str], cfg: RouterStageConfig, seed: int) -> dict:
    """``{"top_k": {...}, "confusion": {...}}`` of ranked predictions against gold labels."""
    from alignment.routing.metrics import confusion_table, top_k_accuracy

    return {"top_k": top_k_accuracy(ranked, gold, cfg.top_k, cfg.bootstrap_resamples, seed),
            "confusion": confusion_table(gold, [r[0] for r in ranked], labels)}


def run(cfg: RouterStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    from alignment.models import load_tokenizer
    from alignment.routing.cases import label_set, read_rows, select, subsample
    from alignment.routing.classifier import build_router, rank_labels, train_router

    out = Path(out)
    check_tracking(cfg.tracking, out)
    seed = ctx.seed if cfg.seed is None else cfg.seed
    train_rows = read_rows(inputs["data"], cfg.train_split)
    labels = label_set(train_rows, cfg.target, cfg.top_labels)
    train, test = select(train_rows, cfg.target, labels), select(read_rows(inputs["data"], cfg.eval_split),
                                                                cfg.target, labels)
    if cfg.max_train_cases is not None:
        train = subsample(train, cfg.max_train_cases, seed)
    metrics = {"target": cfg.target, "labels": len(labels), "train_cases": len(train.labels),
               "eval_cases": len(test.labels), "multitask": cfg.generation_weight > 0}
    if len(train.labels) < cfg.min_train_cases or not test.labels or len(labels) < 2:
        return metrics | {"problem": f"{len(train.labels)} training cases over {len(labels)} labels"}
    tokenizer = load_tokenizer(inputs["backbone"], "backbone")
    model = build_router(inputs["backbone"], tokenizer, labels, cfg.generation_weight > 0, ctx.device, seed)
    with start_tracking(cfg.tracking, out, config=cfg) as tracker:
        metrics |= train_router(model, tokenizer, train, labels, cfg.optim, cfg.max_length, cfg.generation_weight,
                                seed, ctx.device, ctx.progress, tracker.log)
        ranked, probs = rank_labels(model.classifier, tokenizer, test.messages, cfg.max_length,
                                    cfg.eval_batch_size, ctx.device)
        report = evaluate(ranked, test.labels, labels, cfg, seed)
        tracker.log({f"eval/{k}_accuracy": v["accuracy"] for k, v in report["top_k"].items()}, metrics["steps"])
    model.classifier.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    _write_predictions(out, test, ranked, probs, cfg.top_k)
    report |= {"target": cfg.target, "eval_split": cfg.eval_split, "labels": labels,
               "train_cases": len(train.labels), "eval_cases": len(test.labels),
               "left_out": {"train": train.left_out, "eval": test.left_out},
               "multitask": cfg.generation_weight > 0, "generation_weight": cfg.generation_weight}
    (out / "routing.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    for k, v in report["top_k"].items():
        metrics |= {f"{k}_accuracy": v["accuracy"], f"{k}_ci_low": v["ci_low"], f"{k}_ci_high": v["ci_high"]}
    ctx.logger.info("router (%s): %s", cfg.target, {k: round(v["accuracy"], 3) for k, v in report["top_k"].items()})
    return metrics


def _write_predictions(out: Path, cases, ranked: list[list[str]], probs: list[list[float]], ks: list[int]) -> None:
    import pandas as pd

    table = {"case_id": cases.ids, "gold": cases.labels, "ranked": ranked, "probabilities": probs}
    for k in ks:
        table[f"hit@{k}"] = [g in r[:k] for g, r in zip(cases.labels, ranked)]
    pd.DataFrame(table).to_parquet(out / "predictions.parquet", index=False)
