"""Stage ``rm_agreement``: do a reward model's scores rank held-out samples the way the truth does?

ChiMed-GPT trained its reward model on 4-way rankings (doctor > GPT-4 > GPT-3.5 > weak model)
because one trained on binary doctor-vs-weak pairs reached ~98% validation accuracy fast and was
not useful. Held-out pairwise accuracy on the RM's own kind of pairs cannot show that; this stage
measures what rejection sampling relies on instead:

1. ``k`` samples per case of the data stage's eval sets (held out from every training output,
   with ground truth) from the ``policy`` checkpoint (the SFT model RSFT starts from), at the
   sampling settings RSFT uses.
2. The ground-truth quality of every sample, without any LLM
   (:func:`alignment.evaluation.clinical.quality_score`: right diagnosis, right department,
   asking when information is missing and only then, red flags).
3. Every reward model's score of every sample, and the rank agreement of scores with quality:
   Spearman over all samples, Kendall's tau-b within each case's k samples, the quality of the
   sample each RM would keep (best of k) against a random pick and the oracle, with intervals
   over cases and paired differences between the RMs (:mod:`alignment.metrics.rank_agreement`).
4. Every RM's pairwise accuracy on the data stage's held-out ranked tuples, rung by rung
   (doctor > gpt-4, ..., and doctor > weak): the binary RM's own pairs and the ranked RM's.

Inputs: ``data`` (``eval/`` sets; ``ranked/<heldout_split>``), ``policy``, ``reward_model`` and
``other_reward_model`` (optional). Each RM is named by its stage (the manifest beside the
checkpoint), else by its input name. Outputs: ``samples.parquet`` (case, sample, response, checks,
quality, one score column per RM), ``agreement.json`` (everything, with intervals).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from alignment.evaluation.clinical import QualityWeights
from alignment.generation import SamplingSpec
from alignment.generation_backends import GenerationSpec
from alignment.models import DType
from alignment.specs import RewardScoringSpec
from medalign.config import StrictModel
from medalign.stage import Input, StageContext

NAME = "rm_agreement"
INPUTS = {"data": Input(("data",), "data stage directory (eval/ sets with ground truth; ranked/ held-out tuples)",
                        reads=("eval",)),
          "policy": Input(("sft",), "checkpoint whose samples are scored (the policy RSFT starts from)", model=True),
          "reward_model": Input(("reward_model",), "a reward model checkpoint", model=True),
          "other_reward_model": Input(("reward_model",), "a second reward model, compared with the first on the "
                                      "same samples", model=True, optional=True)}
RM_INPUTS = ("reward_model", "other_reward_model")


class RMAgreementStageConfig(StrictModel):
    """Which held-out samples, how many, and how their ground-truth quality is weighed."""

    k: int = Field(8, ge=2)                              # samples per eval case (RSFT's k)
    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(temperature=1.0, top_p=1.0))  # as rsft samples
    generation: GenerationSpec = Field(default_factory=GenerationSpec)  # where: in_process, endpoint, ray_actors
    eval_sets: list[str] | None = None                   # the data stage's eval sets to use (None: all)
    max_cases: int | None = Field(None, ge=1)            # first N cases of each set (None: all)
    quality: QualityWeights = Field(default_factory=QualityWeights)  # weights of the ground-truth quality score
    reward: RewardScoringSpec = Field(default_factory=RewardScoringSpec)  # scoring with the reward models
    heldout_split: str = "validation"                    # ranked/<split>.parquet: held-out tuples, accuracy per rung
    n_bootstrap: int = Field(2000, ge=100)               # bootstrap resamples (over cases) for the intervals
    dtype: DType = "auto"                                # generation / scoring dtype
    seed: int | None = None                              # None: the job seed


Config = RMAgreementStageConfig


def rm_label(ref: str, input_name: str) -> str:
    """The name of the stage that wrote checkpoint ``ref`` (its manifest), else ``input_name``."""
    from medalign.artifacts import read_manifest

    manifest = read_manifest(Path(ref).parent) if Path(ref).name == "model" else None
    return str(manifest["name"]) if manifest and manifest.get("name") else input_name


def rung_accuracy(tuples: list[dict], scores: list[list[float]], n_bootstrap: int, seed: int) -> dict:
    """Pairwise accuracy of ``scores`` on ranked ``tuples``, per pair of rank levels (a rung,
    named by the responses' sources when known: ``doctor>gpt-4``; ties count half), with a 95% interval;
    plus ``adjacent`` (every adjacent pair) and ``best_worst`` (best against worst)."""
    from alignment.metrics.stats import mean_with_ci

    outcomes: dict[str, list[float]] = {}
    for t, s in zip(tuples, scores):
        levels = sorted(set(t["ranks"]))
        for a, better in enumerate(levels):
            for b, worse in enumerate(levels[a + 1:], start=a + 1):
                kinds = [_rung_name(t, better, worse)] + (["adjacent"] if b == a + 1 else []) + \
                        (["best_worst"] if (a, b) == (0, len(levels) - 1) else [])
                for i, ri in enumerate(t["ranks"]):
                    for j, rj in enumerate(t["ranks"]):
                        if ri == better and rj == worse:
                            for kind in kinds:
                                outcomes.setdefault(kind, []).append(1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    return {kind: mean_with_ci(v, n_bootstrap, seed=seed) for kind, v in outcomes.items()}


def _rung_name(t: dict, better: int, worse: int) -> str:
    sources = t.get("response_sources")
    if not sources:
        return f"rank{better}>rank{worse}"
    name = {r: s for r, s in zip(t["ranks"], sources)}
    return f"{name[better]}>{name[worse]}"


def _samples(cfg: RMAgreementStageConfig, inputs: dict[str, str], out: Path, seed: int, ctx) -> list[dict]:
    """``k`` samples of every eval case with ground truth, each with its checks and quality."""
    from dataclasses import asdict

    from alignment.evaluation.cases import load_eval_sets
    from alignment.evaluation.clinical import check_response, quality_score
    from alignment.stages.sample import generate_from_checkpoint

    cases = [c for s in load_eval_sets([inputs["data"]], names=cfg.eval_sets, max_cases=cfg.max_cases)
             for c in s.cases if c.truth is not None]
    if not cases:
        raise ValueError(f"rm_agreement: no eval case with ground truth in {inputs['data']}/eval "
                         "(the recipe's outputs.eval; the synthetic sets have truth)")
    gens = generate_from_checkpoint(inputs["policy"], "policy", [{"messages": c.messages} for c in cases],
                                    cfg.sampling, cfg.k, seed, cfg.dtype, ctx, cfg.generation, out)
    rows = []
    for case, row in zip(cases, gens):
        for i, g in enumerate(row):
            check = check_response(g.text, case.truth)
            rows.append({"eval_set": case.eval_set, "case_id": case.case_id, "category": case.category,
                         "messages": case.messages, "sample": i, "response": g.text,
                         **{f"check_{k}": v for k, v in asdict(check).items()},
                         "quality": quality_score(check, cfg.quality)})
    return rows


def _score(ref: str, prompts: list[list[dict]], responses: list[str], cfg: RMAgreementStageConfig, ctx) -> list[float]:
    from alignment.models import load_reward_model, load_tokenizer
    from alignment.reward_scoring import score_responses

    tok = load_tokenizer(ref, "reward_model")
    rm = load_reward_model(ref, device=ctx.device, dtype=cfg.dtype)
    return score_responses(rm, tok, prompts, responses, cfg.reward.score_batch_size, cfg.reward.max_length,
                           ctx.progress)


def _heldout_tuples(data_dir: str, split: str) -> list[dict]:
    from alignment.stages.inputs import Quarantine, read_ranked

    path = Path(data_dir) / "ranked" / f"{split}.parquet"
    return read_ranked(path, Quarantine()) if path.is_file() else []


def _grouped(rows: list[dict], column: str) -> list[list[float]]:
    """``column`` of ``rows`` grouped by case, in row order (rows of one case are contiguous)."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["eval_set"], r["case_id"]), []).append(r[column])
    return list(groups.values())


def run(cfg: RMAgreementStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    import pandas as pd

    from alignment.metrics.rank_agreement import agreement_table

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed = ctx.seed if cfg.seed is None else cfg.seed
    models: dict[str, str] = {}
    for name in (n for n in RM_INPUTS if inputs.get(n)):
        label = rm_label(inputs[name], name)
        models[label if label not in models else name] = inputs[name]
    rows = _samples(cfg, inputs, out, seed, ctx)
    tuples = _heldout_tuples(inputs["data"], cfg.heldout_split)
    heldout = {}
    for label, ref in models.items():
        scores = _score(ref, [r["messages"] for r in rows], [r["response"] for r in rows], cfg, ctx)
        for r, s in zip(rows, scores):
            r[f"score_{label}"] = s
        flat = _score(ref, [t["messages"] for t in tuples for _ in t["responses"]],
                      [x for t in tuples for x in t["responses"]], cfg, ctx) if tuples else []
        per_tuple, start = [], 0
        for t in tuples:
            per_tuple.append(flat[start:start + len(t["responses"])])
            start += len(t["responses"])
        heldout[label] = rung_accuracy(tuples, per_tuple, cfg.n_bootstrap, seed)
    table = agreement_table(_grouped(rows, "quality"), {m: _grouped(rows, f"score_{m}") for m in models},
                            cfg.n_bootstrap, seed=seed)
    report = {"reward_models": {m: ref for m, ref in models.items()}, "policy": inputs["policy"], "k": cfg.k,
              "quality_weights": cfg.quality.model_dump(), "agreement": table,
              "heldout_split": cfg.heldout_split, "heldout_tuples": len(tuples), "heldout_by_rung": heldout}
    pd.DataFrame([{k: v for k, v in r.items() if k != "messages"} for r in rows]).to_parquet(
        out / "samples.parquet", index=False)
    (out / "agreement.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return agreement_metrics(report)


def agreement_metrics(report: dict) -> dict:
    """The stage's metrics: ``spearman`` and ``selection_gain`` (one value per RM, in the order of
    ``reward_models``); per RM ``[value, ci_low, ci_high]`` of each agreement figure and its
    held-out accuracy per rung; the paired differences; the quality of a random and an oracle pick."""
    def triple(f: dict) -> list:
        return [f["value"], f["ci_low"], f["ci_high"]]

    table = report["agreement"]
    models = list(report["reward_models"])
    return {"reward_models": models, "cases": table["cases"], "samples": table["samples"],
            # in the order of reward_models, for the job's table and headline
            "spearman": [table["models"][m]["spearman"]["value"] for m in models],
            "selection_gain": [table["models"][m]["selection_gain"]["value"] for m in models],
            "mean_quality": triple(table["mean_quality"]), "oracle_quality": triple(table["oracle_quality"]),
            "agreement": {m: {k: (triple(v) if isinstance(v, dict) else v) for k, v in figures.items()}
                          for m, figures in table["models"].items()},
            "agreement_paired": {pair: {k: triple(v) for k, v in figures.items()}
                                 for pair, figures in table["paired"].items()},
            "heldout_tuples": report["heldout_tuples"],
            "heldout_by_rung": {m: {rung: [f["value"], f["ci_low"], f["ci_high"], f["n"]] for rung, f in rungs.items()}
                                for m, rungs in report["heldout_by_rung"].items()}}
