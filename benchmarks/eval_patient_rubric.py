"""What the simulated patient and the rubric grader cost per evaluated model, on the local server.

Builds ``--cases`` demo-world cases (conditions in turn, zh/en alternating, every other one
missing key information) with their case cards and demo rubrics, then:

1. plays them with a scripted doctor that asks once and then names the right condition
   (``run_conversations``, ``--max-turns``), and
2. grades one answer per case on its demo rubric (``grade``, one grader call per criterion),

twice each: a cold run (every call made) and a warm run over the same store (every call found
done in the transcript). Prints calls, tokens and wall time of each. Wall times depend on the
machine and on what else runs on it: read them as an order of magnitude.

    .venv/bin/python benchmarks/eval_patient_rubric.py                  # 100 cases
    .venv/bin/python benchmarks/eval_patient_rubric.py --cases 400 --max-turns 6
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path


def demo_cases(n: int) -> list[dict]:
    from alignment.evaluation.demo_rubric import demo_rubric
    from alignment.evaluation.patient import case_card_for
    from data_recipes.synthetic.answers import draw_case
    from data_recipes.synthetic.world import CONDITIONS

    cases = []
    for i in range(n):
        cond, lang, missing = CONDITIONS[i % len(CONDITIONS)], ("zh", "en")[i % 2], i % 4 < 2
        card = case_card_for(draw_case(cond, lang, random.Random(i), complete=not missing), seed=0)
        truth = {"condition": cond.key, "department": cond.department, "missing_info": missing}
        cases.append({"case_id": f"bench{i}", "eval_set": "bench", "language": lang,
                      "messages": [{"role": "user", "content": card.opening}], "truth": truth,
                      "case_card": card.model_dump(), "rubric": demo_rubric(truth, lang)})
    return cases


def scripted_doctor(cases: list[dict]):
    from data_recipes.synthetic.world import CONDITIONS_BY_KEY, department_of

    truth = {c["messages"][0]["content"]: (CONDITIONS_BY_KEY[c["truth"]["condition"]], c["language"])
             for c in cases}

    def doctor(batch):
        out = []
        for messages in batch:
            cond, lang = truth[messages[0]["content"]]
            if len(messages) == 1:
                out.append(cond.follow_up_questions[lang][0])
            else:
                out.append(f"{cond.name[lang]} / {department_of(cond, lang)}")
        return out
    return doctor


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    from alignment.evaluation.healthbench import example_from_case, grade
    from alignment.evaluation.patient import run_conversations
    from judges.config import JudgeConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100, help="eval cases (default 100)")
    parser.add_argument("--max-turns", type=int, default=4, help="doctor turns at most (default 4)")
    args = parser.parse_args()
    cases = demo_cases(args.cases)
    doctor = scripted_doctor(cases)
    examples = [example_from_case(c) for c in cases]
    answers = [f"{c['truth']['condition']}?" for c in cases]
    patient = JudgeConfig(name="patient", model="medalign-patient")
    grader = JudgeConfig(name="grader", model="medalign-grader")
    with tempfile.TemporaryDirectory() as tmp:
        for run in ("cold", "warm"):
            _, wall = _timed(lambda: run_conversations(cases, doctor, patient, max_turns=args.max_turns,
                                                       store_dir=Path(tmp) / "mt", seed=0))
            calls = json.loads((Path(tmp) / "mt" / "patient_calls.json").read_text())
            print(f"multi-turn {run}: {args.cases} conversations, {calls['api_calls']} patient calls "
                  f"({calls['already_done']} already done), {calls['tokens']} tokens, {wall:.2f} s")
            report, wall = _timed(lambda: grade(examples, answers, grader, Path(tmp) / "rubric",
                                                n_resamples=200))
            c = report["calls"]
            print(f"rubric {run}: {args.cases} answers, {c['planned']} criteria, {c['api_calls']} "
                  f"grader calls ({c['already_done']} already done), {c['tokens']} tokens, {wall:.2f} s")


if __name__ == "__main__":
    main()
