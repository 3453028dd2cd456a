"""Stage ``doctor_rank``: RealMedDial's doctor recommendation: given a case, rank the doctors,
and score the ranking against the doctor who saw the patient (in the demo world, the doctor the
world assigns), for a retrieval baseline and for a trained model.

    doctor_rank:
      inputs: {data: data, router: doctor_router}     # router: a router stage with target: doctor
      config: {top_k: [1, 3, 5]}

The doctors are every doctor the data's ``cases/`` name, with their profile text (all splits: a
doctor's profile is not a secret of the test split). The baseline ranks them by the character
n-gram TF-IDF cosine between the case and each profile (``alignment.routing.retrieval``). The
trained model is the ``router`` input's ranking (a classification head over the doctors, trained
on the training cases). Both are scored on the ``split`` cases both ranked (a case whose doctor
the router never trained on is counted apart): top-k accuracy with 95% bootstrap intervals, and
the trained model's gain over the baseline with a paired interval. Without a ``router`` input the
stage reports the baseline alone. Outputs: ``doctor_rank.json``, ``rankings.parquet``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, model_validator

from medalign.config import StrictModel
from medalign.stage import Input, StageContext

NAME = "doctor_rank"
INPUTS = {"data": Input(("data",), "data stage directory (cases/ with doctor and doctor_profile)", reads=("cases",)),
          "router": Input(("router",), "router stage directory trained with target: doctor", optional=True)}
SPLITS = ("train", "validation", "test")


class DoctorRankConfig(StrictModel):
    """Doctor ranking: retrieval baseline and trained model, top-k accuracy."""

    split: str = "test"                              # cases ranked
    top_k: list[int] = Field(default_factory=lambda: [1, 3, 5], min_length=1)   # accuracies reported
    ngram_min: int = Field(2, ge=1)                  # shortest character n-gram of the TF-IDF baseline
    ngram_max: int = Field(3, ge=1)                  # longest character n-gram
    bootstrap_resamples: int = Field(2000, ge=100)   # resamples of the 95% intervals over cases
    seed: int | None = None                          # None: the job seed (bootstrap draws)

    @model_validator(mode="after")
    def _ngrams(self) -> "DoctorRankConfig":
        if self.ngram_min > self.ngram_max:
            raise ValueError(f"ngram_min {self.ngram_min} > ngram_max {self.ngram_max}")
        return self


Config = DoctorRankConfig


def accept(cfg: DoctorRankConfig, metrics: dict) -> list[str]:
    problems = []
    if metrics.get("doctors", 0) < 2:
        problems.append("fewer than two doctors with a profile in cases/: nothing to rank")
    if not metrics.get("cases"):
        problems.append(f"no {cfg.split} case names a doctor of the catalogue")
    return problems


def doctor_catalogue(data_dir: str | Path) -> dict[str, str]:
    """Doctor id -> profile text of every doctor the cases name (the first profile seen), in
    id order."""
    from alignment.routing.cases import read_rows

    profiles: dict[str, str] = {}
    for split in SPLITS:
        try:
            rows = read_rows(data_dir, split)
        except FileNotFoundError:
            continue
        for row in rows:
            if row.get("doctor") and row.get("doctor_profile"):
                profiles.setdefault(row["doctor"], row["doctor_profile"])
    return dict(sorted(profiles.items()))


def retrieval_rankings(texts: list[str], catalogue: dict[str, str], n_min: int, n_max: int) -> list[list[str]]:
    """Doctor ids ranked for each case text by TF-IDF cosine with the profiles."""
    from alignment.routing.retrieval import TfidfIndex

    ids = list(catalogue)
    index = TfidfIndex([catalogue[i] for i in ids], n_min, n_max)
    return [[ids[j] for j in index.rank(text)] for text in texts]


def router_rankings(directory: str | Path) -> dict[str, list[str]]:
    """case_id -> the doctor router's ranking (it must have been trained with target: doctor)."""
    from alignment.stages.routing_gain import load_router

    report, preds = load_router(directory, "router")
    if report["target"] != "doctor":
        raise ValueError(f"input 'router' ({directory}) routes to {report['target']}s; doctor_rank needs a router "
                         f"trained with target: doctor")
    return {cid: list(r) for cid, r in zip(preds.case_id, preds.ranked)}


def run(cfg: DoctorRankConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    import pandas as pd

    from alignment.routing.cases import case_text, read_rows
    from alignment.routing.metrics import paired_gain, top_k_accuracy, top_k_hits

    seed = ctx.seed if cfg.seed is None else cfg.seed
    catalogue = doctor_catalogue(inputs["data"])
    rows = [r for r in read_rows(inputs["data"], cfg.split) if r.get("doctor") in catalogue]
    trained = router_rankings(inputs["router"]) if inputs.get("router") else None
    not_ranked = 0
    if trained is not None:
        not_ranked = sum(1 for r in rows if r["case_id"] not in trained)
        rows = [r for r in rows if r["case_id"] in trained]
    metrics = {"doctors": len(catalogue), "cases": len(rows), "cases_router_did_not_rank": not_ranked}
    if len(catalogue) < 2 or not rows:
        return metrics
    gold = [r["doctor"] for r in rows]
    baseline = retrieval_rankings([case_text(r["messages"]) for r in rows], catalogue, cfg.ngram_min, cfg.ngram_max)
    report = {"split": cfg.split, "doctors": len(catalogue), "cases": len(rows), "cases_router_did_not_rank": not_ranked,
              "retrieval": top_k_accuracy(baseline, gold, cfg.top_k, cfg.bootstrap_resamples, seed)}
    table = {"case_id": [r["case_id"] for r in rows], "gold": gold, "retrieval": baseline}
    if trained is not None:
        model = [trained[r["case_id"]] for r in rows]
        report["trained"] = top_k_accuracy(model, gold, cfg.top_k, cfg.bootstrap_resamples, seed)
        report["gain"] = {f"top{k}": paired_gain(top_k_hits(baseline, gold, k), top_k_hits(model, gold, k),
                                                 cfg.bootstrap_resamples, seed) for k in cfg.top_k}
        table["trained"] = model
    pd.DataFrame(table).to_parquet(Path(out) / "rankings.parquet", index=False)
    (Path(out) / "doctor_rank.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    for name in ("retrieval", "trained"):
        for k, v in report.get(name, {}).items():
            metrics |= {f"{name}_{k}": v["accuracy"], f"{name}_{k}_ci_low": v["ci_low"], f"{name}_{k}_ci_high": v["ci_high"]}
    ctx.logger.info("doctor ranking: %s", {n: {k: round(v["accuracy"], 3) for k, v in report[n].items()}
                                           for n in ("retrieval", "trained") if n in report})
    return metrics
