"""How much a reward model could give PPO on a finished quickstart run, and how much this one gives.

Issue 11 asks the quickstart's reward model for held-out pairwise accuracy >= 0.85 and PPO for a
referee win rate whose 95% interval is above 0.5. This script measures, on one run directory
(``runs/quickstart`` after ``make quickstart``), the figures that say why those targets are or are
not within reach:

1. Held-out judge pairs (the reward_model stage's own split) by what decided the rating, from the
   local judge's rating function (:func:`judges.server.rubric.rate`) on each response and the
   prompt's reference (``accuracy`` = the two differ in diagnosis / department accuracy;
   ``coherence``; ``other`` = length band, advice, red flags, asking), scored
   by the job's reward model and, with no training at all, by the SFT model's mean log-likelihood
   of the response.
2. Headroom on the eval cases (the eval stage's single-turn sets): the rubric's rating (the local
   judge's rating function, integer like its replies) of other ways to answer, against the SFT
   model sampled as the eval stage samples it (temperature 0.7, one sample): win rate (ties count
   half) with a bootstrap 95% interval. Rows: another seed (what "no change" reads), temperature
   0.4, greedy, and best-of-4 at temperature 0.7 picked at random, by the SFT log-likelihood, by
   the job's reward model, and by the rubric itself (the oracle: what a perfect reward model would
   pick among four samples).

    .venv/bin/python benchmarks/reward_headroom.py runs/quickstart

With another judge than the local one, part 1's breakdown says what the local rubric would have
weighed, not what that judge did. CPU, under a minute for the quickstart (2 threads). Figures move
with the run: another machine's run gives other ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

def stage_dir(run: Path, stage: str) -> Path:
    """The directory of ``stage`` in the job's last run, as its ``report.json`` records it (a run
    directory can hold several keys of one stage after overrides; the report names the one used)."""
    report = run / "report.json"
    if not report.is_file():
        raise SystemExit(f"{run}: no report.json (run the job first: medalign run jobs/quickstart.yaml)")
    entry = json.loads(report.read_text(encoding="utf-8")).get("stages", {}).get(stage)
    if not entry or entry.get("status") not in ("ran", "reused") or not entry.get("dir"):
        raise SystemExit(f"{report}: stage {stage} did not complete in the job's last run")
    return Path(entry["dir"])


def pair_kind(chosen, rejected) -> str:
    """What decided a judged pair, from the two responses' :class:`judges.server.rubric.Rating`."""
    if abs(chosen.accuracy - rejected.accuracy) > 1e-9:
        return "accuracy"
    return "coherence" if abs(chosen.coherence.score - rejected.coherence.score) > 1e-9 else "other"


def mean_logprob(model, tokenizer, prompts: list[list[dict]], responses: list[str]) -> list[float]:
    from alignment.likelihood import reply_nll

    return [-nll / max(n, 1) for nll, n in reply_nll(model, tokenizer, prompts, responses, 256, 64)]


def heldout_breakdown(run: Path, lm, tokenizer) -> None:
    import pandas as pd

    from alignment.models import load_reward_model
    from alignment.reward_scoring import score_responses
    from alignment.stages.reward_model import is_heldout
    from judges.server.rubric import rate

    judge, rm_dir, data = stage_dir(run, "judge"), stage_dir(run, "reward_model"), stage_dir(run, "data")
    settings = json.loads((rm_dir / "reward_stats.json").read_text(encoding="utf-8"))["settings"]
    prompts_file = data / "prompts" / "train.parquet"
    refs = {r.prompt_id: (r.reference, r.language or "zh") for r in pd.read_parquet(prompts_file).itertuples()}
    pairs = [p for _, p in pd.read_parquet(judge / "pairs.parquet").iterrows()
             if is_heldout(p.prompt_id, settings["heldout_fraction"])]
    kinds = [pair_kind(rate(p.chosen, *refs[p.prompt_id]), rate(p.rejected, *refs[p.prompt_id])) for p in pairs]
    prompts = [list(p.messages) for p in pairs]
    rm = load_reward_model(str(rm_dir / "model"), "reward_model", device="cpu", dtype="float32")
    scorers = {"reward model": lambda rs: score_responses(rm, tokenizer, prompts, rs, 32, 256, False),
               "SFT log-likelihood": lambda rs: mean_logprob(lm, tokenizer, prompts, rs)}
    print(f"1. held-out judge pairs ({len(pairs)}, {rm_dir.name}, {judge.name}): accuracy by what decided the rating")
    print(f"   {'scorer':20s} " + " ".join(f"{k:>16s}" for k in ("accuracy", "coherence", "other", "all")))
    for name, score in scorers.items():
        chosen, rejected = score([p.chosen for p in pairs]), score([p.rejected for p in pairs])
        hits: dict[str, list[float]] = defaultdict(list)
        for kind, c, r in zip(kinds, chosen, rejected):
            outcome = 1.0 if c > r else 0.5 if c == r else 0.0
            hits[kind].append(outcome)
            hits["all"].append(outcome)
        cells = [f"{sum(v) / len(v):.2f} (n={len(v)})".rjust(16) if (v := hits.get(k)) else "-".rjust(16)
                 for k in ("accuracy", "coherence", "other", "all")]
        print(f"   {name:20s} " + " ".join(cells))


def headroom(run: Path, lm, tokenizer, k: int = 4) -> None:
    from alignment.evaluation.cases import load_eval_sets
    from alignment.generation import SamplingSpec, generate_responses
    from alignment.metrics.stats import mean_with_ci
    from alignment.models import load_reward_model
    from alignment.reward_scoring import score_responses
    from judges.server.rubric import rate

    data, rm_dir = stage_dir(run, "data"), stage_dir(run, "reward_model")
    cases = [c for s in load_eval_sets([str(data)]) for c in s.cases if c.reference]
    prompts = [c.messages for c in cases]

    def sample(temperature: float, n: int, seed: int) -> list[list[str]]:
        spec = SamplingSpec(temperature=temperature, top_p=1.0, max_new_tokens=64, batch_size=64)
        return [[g.text for g in gens] for gens in generate_responses(lm, tokenizer, prompts, spec, k=n, seed=seed)]

    def rating(case, text: str) -> int:
        return round(rate(text, case.reference, case.language or "zh").total)

    base = [g[0] for g in sample(0.7, 1, 0)]
    base_ratings = [rating(c, t) for c, t in zip(cases, base)]
    many = sample(0.7, k, 2)
    rm = load_reward_model(str(rm_dir / "model"), "reward_model", device="cpu", dtype="float32")
    flat_prompts = [p for p in prompts for _ in range(k)]
    flat = [t for g in many for t in g]
    rm_scores = score_responses(rm, tokenizer, flat_prompts, flat, 64, 256, False)
    lp_scores = mean_logprob(lm, tokenizer, flat_prompts, flat)

    def best_of(scores: list[float]) -> list[str]:
        return [g[max(range(k), key=lambda i: scores[j * k + i])] for j, g in enumerate(many)]

    rows = {"SFT T=0.7, another seed": [g[0] for g in sample(0.7, 1, 1)],
            "SFT T=0.4": [g[0] for g in sample(0.4, 1, 0)],
            "SFT greedy": [g[0] for g in sample(0.0, 1, 0)],
            f"best-of-{k} random (first)": [g[0] for g in many],
            f"best-of-{k} SFT log-likelihood": best_of(lp_scores),
            f"best-of-{k} reward model": best_of(rm_scores),
            f"best-of-{k} rubric (oracle)": [max(g, key=lambda t, c=c: rating(c, t)) for c, g in zip(cases, many)]}
    print(f"2. rubric-rated win rate against SFT sampled at T=0.7 on {len(cases)} eval cases (ties half)")
    for name, texts in rows.items():
        wins = [1.0 if rating(c, t) > b else 0.5 if rating(c, t) == b else 0.0
                for c, t, b in zip(cases, texts, base_ratings)]
        ci = mean_with_ci(wins, seed=0)
        print(f"   {name:32s} {ci['value']:.3f} [{ci['ci_low']:.3f}, {ci['ci_high']:.3f}]")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a quickstart run directory, e.g. runs/quickstart")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch
    from transformers import AutoModelForCausalLM

    from alignment.models import load_tokenizer

    torch.set_num_threads(args.threads)
    sft = stage_dir(args.run, "sft") / "model"
    tokenizer = load_tokenizer(str(sft), "sft")
    lm = AutoModelForCausalLM.from_pretrained(str(sft)).eval()
    heldout_breakdown(args.run, lm, tokenizer)
    headroom(args.run, lm, tokenizer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
