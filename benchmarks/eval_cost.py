"""What an evaluation costs: judge calls and wall time per model on the shipped eval sets.

Builds ``data_recipes/recipes/eval_sets.yaml`` (the synthetic single-turn and multi-turn sets in
zh and en, 400 cases with ground truth, and the real KUAKE-QIC / Med-dialog samples, 200 cases
without), then runs ``medalign eval`` (alignment/evaluation/run.py) with one model, then two, then
three, in one output directory: each run after the first adds one model, so the figures printed
for it are what that model costs (its generations and the referee calls of its new pairs, both
orders; the earlier pairs come from the transcript and the cache). Models: given with ``--model
NAME=PATH`` (three or more), or three tiny untrained Qwen2 models built here (~0.3M parameters:
generation is cheap, so the referee dominates; with a 7B model and a GPT-4 referee both grow).

    .venv/bin/python benchmarks/eval_cost.py                       # tiny models, local referee
    .venv/bin/python benchmarks/eval_cost.py --model sft=runs/quickstart/sft-... --model ppo=... --model base=...
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="a model (repeat; 3+)")
    ap.add_argument("--out", help="work directory (default: a temporary one)")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="response cap of every model")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from alignment.evaluation.cases import load_eval_sets
    from alignment.evaluation.config import EvalRunConfig
    from alignment.evaluation.run import run_evaluation
    from medalign.stage import StageContext

    out = Path(args.out or tempfile.mkdtemp(prefix="eval_cost_"))
    t0 = time.perf_counter()
    data = build_sets(out)
    sets = load_eval_sets([str(data)])
    cases = [c for s in sets for c in s.cases]
    print(f"eval sets: {', '.join(f'{s.name} ({len(s.cases)})' for s in sets)}; {len(cases)} cases, "
          f"built in {time.perf_counter() - t0:.1f} s")
    texts = [m["content"] for c in cases for m in c.messages] + [c.reference for c in cases if c.reference]
    models = dict(m.split("=", 1) for m in args.model) if args.model else tiny_models(texts, out / "models")
    ctx = StageContext(seed=0, progress=False, logger=logging.getLogger("eval_cost"))
    names = list(models)
    print(f"{'model':<10} {'cases':>6} {'generated':>9} {'gen s':>7} {'judge calls':>11} {'cache hits':>10} "
          f"{'judge s':>8} {'run s':>7}")
    for k in range(1, len(names) + 1):
        cfg = EvalRunConfig(name="cost", models=[{"name": n, "path": models[n]} for n in names[:k]],
                            eval_sets={"data": [str(data)]},
                            sampling={"temperature": 0.7, "top_p": 1.0, "max_new_tokens": args.max_new_tokens,
                                      "batch_size": 64})
        t = time.perf_counter()
        report = run_evaluation(cfg, out / "eval", ctx)
        wall = time.perf_counter() - t
        new, gen = names[k - 1], report["generation"][names[k - 1]]
        pairs = [v for p, v in (report["referee"].get("runs") or {}).items() if new in p.split(" vs ")]
        calls = sum(r["api_calls"] for r in pairs if r["api_calls"])
        hits = sum(r["cache_hits"] for r in pairs)
        judge_s = sum(r["wall_s"] for r in pairs if r["api_calls"])
        print(f"{new:<10} {len(cases):>6} {gen['generated']:>9} {gen['wall_s']:>7.1f} {calls:>11} {hits:>10} "
              f"{judge_s:>8.1f} {wall:>7.1f}")
    print(f"(judge calls: the referee's API calls for the pairs the model adds, both orders; run s: the "
          f"whole `medalign eval` run that added it; work directory {out})")


if __name__ == "__main__":
    main()
