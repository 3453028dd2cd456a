"""``medalign eval CONFIG``: evaluate N models on eval sets in one run (alignment/evaluation/run.py).

    medalign eval examples/eval.yaml                       # config: alignment/evaluation/config.py
    medalign eval my_eval.yaml referee.pairs=baseline referee.baseline=sft --out runs/eval/mine

Paths in the config are relative to the current directory. A second run with one more model
generates and judges only what involves it (the caches are in the output directory).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate several models on eval sets: clinical ground truth, HuatuoGPT's referee, leaderboard, "
                     "rubric grading, multi-turn with a simulated patient",
        description="Evaluate the models of CONFIG (checkpoints, stage directories runs/<job>/<stage>-<key> or hub "
                    "ids) on eval sets (a data stage's eval/ or Parquet files): ground-truth clinical metrics "
                    "(diagnosis, department, asking when information is missing, red flags; no LLM), HuatuoGPT's "
                    "referee on every pair of models (both orders, transcripts), a Bradley-Terry leaderboard; "
                    "with rubric.enabled, HealthBench-format rubric grading (one grader call per criterion); with "
                    "multi_turn.enabled, conversations with a simulated patient scored by ground truth and by the "
                    "referee (the local judge server plays patient and grader by default; any OpenAI-compatible "
                    "endpoint by config). Writes report.json and report.html. Generations, judgments, patient and "
                    "grader calls are cached by content: adding a model generates, plays, grades and judges only "
                    "what involves it. Config fields: alignment/evaluation/config.py.")
    p.add_argument("config", help="the eval YAML (models, eval_sets, referee, sampling, ...)")
    p.add_argument("overrides", nargs="*", default=[], metavar="key.sub=value",
                   help="config overrides, e.g. referee.pairs=baseline referee.baseline=sft sampling.max_new_tokens=64 "
                        "rubric.enabled=true multi_turn.enabled=true multi_turn.max_cases=40")
    p.add_argument("--out", help="output directory (default: the config's out_dir, else runs/eval/<name>)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (generation)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from alignment.evaluation.config import EvalRunConfig
    from alignment.evaluation.run import run_evaluation
    from medalign.config import load_config
    from medalign.stage import StageContext

    cfg = load_config(args.config, EvalRunConfig, args.overrides)
    out = Path(args.out or cfg.out_dir or f"runs/eval/{cfg.name}")
    ctx = StageContext(job="eval", stage=cfg.name, seed=cfg.seed, device=args.device,
                       progress=not args.no_progress, logger=logging.getLogger("medalign.eval"))
    report = run_evaluation(cfg, out, ctx)
    for line in summary_lines(report):
        print(line)
    print(f"report: {out / 'report.json'} and {out / 'report.html'}")
    return 0


def _pct(stat: dict) -> str:
    if stat.get("value") is None:
        return "-"
    return f"{stat['value']:.2f} [{stat['ci_low']:.2f}, {stat['ci_high']:.2f}] n={stat['n']}"


def summary_lines(report: dict) -> list[str]:
    """What the terminal shows after a run: the pooled clinical rates, the referee and the leaderboard."""
    lines = []
    clinical = report["clinical"]
    if clinical.get("enabled"):
        lines.append(f"clinical (sets with ground truth: {', '.join(clinical['applies_to']) or 'none'})")
        for m, s in clinical["models"].items():
            a = s["all"]
            lines.append(f"  {m}: diagnosis {_pct(a['diagnosis_accuracy'])}; department {_pct(a['department_accuracy'])}; "
                         f"asks when missing {_pct(a['asks_when_missing'])}; needless asking {_pct(a['needless_asking'])}")
        for name, why in clinical["not_applicable"].items():
            lines.append(f"  {name}: {why}")
    ref = report["referee"]
    if ref.get("enabled"):
        for pair, d in ref["pairs"].items():
            o = d["overall"]
            ratio = "-" if o["performance_ratio"] is None else f"{o['performance_ratio']:.3f}"
            lines.append(f"referee {pair}: mean {o['mean_a'] or 0:.2f} vs {o['mean_b'] or 0:.2f}, ratio {ratio}, "
                         f"W/T/L {o['wins']}/{o['ties']}/{o['losses']}, excluded {d['excluded'] or 'none'}")
    board = report["leaderboard"]
    if board.get("enabled"):
        lines.append("leaderboard: " + ", ".join(f"{r['model']} {r['strength']:+.2f}" for r in board["rows"]))
    lines += rubric_lines(report["rubric"]) + multi_turn_lines(report["multi_turn"])
    for m, c in report["cost"].items():
        line = (f"cost {m}: generated {c['generated']} (cached {c['generation_cached']}) in "
                f"{c['generation_wall_s']:.1f} s; judge calls {c['judge_calls']} (cache hits "
                f"{c['judge_cache_hits']}) in {c['judge_wall_s']:.1f} s")
        if "patient_calls" in c:
            line += f"; patient calls {c['patient_calls']} (already done {c['patient_already_done']})"
        if "grader_calls" in c:
            line += f"; grader calls {c['grader_calls']} (already done {c['grader_already_done']})"
        lines.append(line)
    return lines


def rubric_lines(section: dict) -> list[str]:
    if not section.get("models"):
        return []
    out = [f"rubric ({section['cases']} cases)"]
    for m, s in section["models"].items():
        o = s["all"]["overall"]
        stat = {"value": o["score"], "ci_low": o["ci_low"], "ci_high": o["ci_high"], "n": o["n"]}
        out.append(f"  {m}: score {_pct(stat)}; incomplete {s['all']['incomplete']}")
    return out


def multi_turn_lines(section: dict) -> list[str]:
    if not section.get("models"):
        return []
    out = [f"multi-turn ({section['cases']} cases, at most {section['max_turns']} doctor turns)"]
    for m, s in section["models"].items():
        a = s["all"]
        out.append(f"  {m}: diagnosis {_pct(a['diagnosis_accuracy'])}; asked when missing "
                   f"{_pct(a['asked_when_missing'])}; turns {_pct(a['mean_turns'])}")
    for pair, d in (section["referee"].get("pairs") or {}).items():
        o = d["overall"]
        ratio = "-" if o["performance_ratio"] is None else f"{o['performance_ratio']:.3f}"
        out.append(f"  referee {pair}: ratio {ratio}, W/T/L {o['wins']}/{o['ties']}/{o['losses']}")
    return out
