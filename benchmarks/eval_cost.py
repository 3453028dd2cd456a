"""What an evaluation costs per model on the shipped eval sets: generation, referee, simulated
patient and rubric grader calls, wall time, and what a re-run finds in the caches.

Builds ``data_recipes/recipes/eval_sets.yaml`` (the synthetic single-turn and multi-turn sets in
zh and en, 400 cases with ground truth and rubrics, 200 of them with case cards; and the real
KUAKE-QIC / Med-dialog samples, 200 cases without), then runs ``medalign eval``
(alignment/evaluation/run.py) with every part switched on (clinical, referee, rubric grading,
multi-turn with the local simulated patient) with one model, then two, then three, in one output
directory: each run after the first adds one model, so the figures printed for it are what that
model costs (its generations, its conversations, its gradings and the referee calls of its new
pairs, both orders, single turns and whole conversations; the earlier models' parts come from the
transcripts and caches). A last run of all the models again shows the cache at work: no
generation and no call. Models: ``--model NAME=PATH`` (three or more), or three tiny untrained
Qwen2 models built here (~0.3M parameters: cheap to run; with a 7B model and GPT-4-class referee,
patient and grader every figure grows).

    .venv/bin/python benchmarks/eval_cost.py                       # tiny models, local server
    .venv/bin/python benchmarks/eval_cost.py --model sft=runs/quickstart/sft-... --model ppo=... --model base=...
    .venv/bin/python benchmarks/eval_cost.py --multi-turn-cases 40 --max-turns 4
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

COLUMNS = [("cases", 6), ("gen", 5), ("gen s", 6), ("ref calls", 9), ("ref done", 8), ("ref s", 6),
           ("patient", 7), ("pat done", 8), ("grader", 6), ("grd done", 8), ("run s", 6)]


def tiny_models(corpus_texts: list[str], out: Path, n: int = 3) -> dict[str, str]:
    from alignment.bootstrap import ModelSpec, TokenizerSpec, bootstrap

    models = {}
    for i in range(n):
        path = out / f"tiny{i}"
        bootstrap(corpus_texts, path, TokenizerSpec(vocab_size=2048), ModelSpec(), seed=i)
        models[f"tiny{i}"] = str(path)
    return models


def build_sets(out: Path) -> Path:
    from data_recipes.stage import SyntheticCorpus, build_recipe

    data = out / "data"
    build_recipe("eval_sets", [], {}, data, SyntheticCorpus(n_consultations=100, languages=["zh", "en"]))
    return data


def row(name: str, n_cases: int, cost: dict, wall: float) -> str:
    """One line of the table: what ``name`` cost in the run that reported ``cost``."""
    values = [n_cases, cost["generated"], f"{cost['generation_wall_s']:.1f}", cost["judge_calls"],
              cost["judge_already_done"], f"{cost['judge_wall_s']:.1f}", cost.get("patient_calls", "-"),
              cost.get("patient_already_done", "-"), cost.get("grader_calls", "-"),
              cost.get("grader_already_done", "-"), f"{wall:.1f}"]
    return f"{name:<10} " + " ".join(f"{v!s:>{w}}" for v, (_, w) in zip(values, COLUMNS))


def run_config(names: list[str], models: dict[str, str], data: Path, args):
    from alignment.evaluation.config import EvalRunConfig

    return EvalRunConfig(name="cost", models=[{"name": n, "path": models[n]} for n in names],
                         eval_sets={"data": [str(data)]},
                         sampling={"temperature": 0.7, "top_p": 1.0, "max_new_tokens": args.max_new_tokens,
                                   "batch_size": 64},
                         rubric={"enabled": True},
                         multi_turn={"enabled": True, "max_cases": args.multi_turn_cases, "max_turns": args.max_turns})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="a model (repeat; 3+)")
    ap.add_argument("--out", help="work directory (default: a temporary one)")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="response cap of every model (and doctor turn)")
    ap.add_argument("--multi-turn-cases", type=int, default=None,
                    help="first N cases with a case card of each set (default: all)")
    ap.add_argument("--max-turns", type=int, default=4, help="doctor turns of a conversation at most")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from alignment.evaluation.cases import load_eval_sets
    from alignment.evaluation.run import run_evaluation
    from medalign.stage import StageContext

    out = Path(args.out or tempfile.mkdtemp(prefix="eval_cost_"))
    t0 = time.perf_counter()
    data = build_sets(out)
    sets = load_eval_sets([str(data)])
    cases = [c for s in sets for c in s.cases]
    print(f"eval sets: {', '.join(f'{s.name} ({len(s.cases)})' for s in sets)}; {len(cases)} cases "
          f"({sum(bool(c.rubric) for c in cases)} with a rubric, {sum(c.case_card is not None for c in cases)} "
          f"with a case card), built in {time.perf_counter() - t0:.1f} s")
    texts = [m["content"] for c in cases for m in c.messages] + [c.reference for c in cases if c.reference]
    models = dict(m.split("=", 1) for m in args.model) if args.model else tiny_models(texts, out / "models")
    ctx = StageContext(seed=0, progress=False, logger=logging.getLogger("eval_cost"))
    names = list(models)
    print(f"{'model':<10} " + " ".join(f"{label:>{w}}" for label, w in COLUMNS))
    for k in range(1, len(names) + 1):
        t = time.perf_counter()
        report = run_evaluation(run_config(names[:k], models, data, args), out / "eval", ctx)
        print(row(names[k - 1], len(cases), report["cost"][names[k - 1]], time.perf_counter() - t))
    t = time.perf_counter()
    report = run_evaluation(run_config(names, models, data, args), out / "eval", ctx)
    wall = time.perf_counter() - t
    print(f"re-run of all {len(names)} models ({wall:.1f} s):")
    for name in names:
        print(row(name, len(cases), report["cost"][name], wall))
    mt = report["multi_turn"]
    print(f"(gen: responses generated in this run; ref: the referee's API calls for the pairs the model adds, single "
          f"turns and {mt['cases']} conversations, both orders; patient / grader: the simulated patient's and the "
          f"rubric grader's API calls; done: calls found ok in the transcripts, no API call; run s: the whole "
          f"`medalign eval` run; parts of the last run: {report['timings']}; work directory {out})")


if __name__ == "__main__":
    main()
