"""Fixtures for the judges tests: synthetic consultations, pair items, samples files, servers.

Servers run on 127.0.0.1 only (judges.server.running_server) and every request loop in these
tests is bounded (a fixed number of items, max_attempts, timeouts).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from data_recipes.synthetic.answers import STYLES, compose_answer, compose_patient_message
from data_recipes.synthetic.world import CONDITIONS


def make_case(i: int, seed: int = 0) -> dict:
    """One synthetic consultation: question, doctor reference, one answer per style."""
    rng = random.Random(seed * 100_003 + i)
    cond = CONDITIONS[i % len(CONDITIONS)]
    lang = ("zh", "en")[i % 2]
    ask = i % 3 == 0
    question = compose_patient_message(cond, lang, rng, complete=not ask)
    reference = compose_answer(cond, lang, "doctor", rng, ask)
    answers = {s: compose_answer(cond, lang, s, rng, ask) for s in STYLES}
    return {"prompt_id": f"p{i}", "condition": cond.key, "language": lang, "ask": ask,
            "question": question, "reference": reference, "answers": answers}


@pytest.fixture
def cases():
    """A factory: ``cases(n, seed=0)`` -> n synthetic consultations."""
    return lambda n, seed=0: [make_case(i, seed) for i in range(n)]


@pytest.fixture
def pair_items():
    """A factory: ``pair_items(n)`` -> n PairItems (hybrid vs weak answer of n cases)."""
    from judges.api import PairItem

    def build(n: int, seed: int = 0, a_style: str = "hybrid", b_style: str = "weak"):
        out = []
        for c in (make_case(i, seed) for i in range(n)):
            out.append(PairItem(c["prompt_id"], [], c["question"], c["reference"],
                                f"{c['prompt_id']}#{a_style}", c["answers"][a_style],
                                f"{c['prompt_id']}#{b_style}", c["answers"][b_style], c["language"]))
        return out
    return build


def write_samples(path: Path, n: int, seed: int = 0, extra_rows: list[dict] | None = None) -> Path:
    """A sample-stage directory with samples.parquet: k=4 responses (one per style) per prompt."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for c in (make_case(i, seed) for i in range(n)):
        rows.append({"prompt_id": c["prompt_id"],
                     "messages": [{"role": "user", "content": c["question"]}],
                     "reference": c["reference"], "language": c["language"],
                     "responses": [c["answers"][s] for s in STYLES],
                     "response_ids": [f"{c['prompt_id']}#{k}" for k in range(len(STYLES))],
                     "policy": "synthetic"})
    rows += extra_rows or []
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path / "samples.parquet")
    return path


@pytest.fixture
def samples_dir(tmp_path):
    """A factory: ``samples_dir(n)`` -> a directory holding samples.parquet with n prompts."""
    return lambda n, seed=0, extra_rows=None: write_samples(tmp_path / f"samples{n}_{seed}", n,
                                                            seed, extra_rows)


@pytest.fixture(scope="module")
def server_url():
    """One plain local rubric server for a test module."""
    from judges.server import running_server

    with running_server() as url:
        yield url
