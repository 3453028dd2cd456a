"""The data stage's ``cases/`` rows (CONTRACTS.md) as what routing reads: a case's text and label.

A case is the patient's opening turns before the doctor's first reply; its text is those turns
joined by newlines. Its label is the ``department`` or the ``doctor`` column. The label set is the
training split's labels, most frequent first (``top_labels`` keeps the N most frequent, as
MEDI-BERPT kept the top-10 departments); cases whose label is not in the set are left out and
counted, never scored as misses of a label the model could not have learned.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Target = Literal["department", "doctor"]


@dataclass
class Cases:
    """The cases of one split that have a label in the label set."""

    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    messages: list[list[dict]] = field(default_factory=list)   # the patient's opening turns
    replies: list[str] = field(default_factory=list)           # the doctor's first reply
    labels: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)     # reason -> cases not kept


def cases_path(data_dir: str | Path, split: str) -> Path:
    """``<data>/cases/<split>.parquet``; FileNotFoundError saying what to add when it is missing."""
    path = Path(data_dir) / "cases" / f"{split}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"input 'data' ({data_dir}) has no cases/{split}.parquet: the recipe must make "
                                f"outputs.cases (see data_recipes/recipes/routing.yaml)")
    return path


def read_rows(data_dir: str | Path, split: str) -> list[dict]:
    """Every row of the split's cases file, as dicts (messages as lists of plain dicts)."""
    import pandas as pd

    frame = pd.read_parquet(cases_path(data_dir, split))
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")   # nulls as None, not NaN
    for row in rows:
        row["messages"] = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    return rows


def case_text(messages: list[dict]) -> str:
    """The patient's words of a case: its user turns joined by newlines."""
    return "\n".join(m["content"] for m in messages if m["role"] == "user")


def label_set(rows: list[dict], target: Target, top_labels: int | None = None) -> list[str]:
    """The labels of ``rows`` (a training split), most frequent first (ties by name), the first
    ``top_labels`` of them when set."""
    counts = Counter(row[target] for row in rows if row.get(target))
    labels = sorted(counts, key=lambda x: (-counts[x], x))
    return labels[:top_labels] if top_labels else labels


def select(rows: list[dict], target: Target, labels: list[str]) -> Cases:
    """The rows whose ``target`` is in ``labels``; the others counted by reason."""
    keep, out, left = set(labels), Cases(), Counter()
    for row in rows:
        label = row.get(target)
        if not label:
            left[f"no {target}"] += 1
            continue
        if label not in keep:
            left[f"{target} not among the trained labels"] += 1
            continue
        out.ids.append(row["case_id"])
        out.texts.append(case_text(row["messages"]))
        out.messages.append(row["messages"])
        out.replies.append(row.get("reply") or "")
        out.labels.append(label)
        out.languages.append(row.get("language") or "zh")
    out.left_out = dict(sorted(left.items()))
    return out


def subsample(cases: Cases, n: int, seed: int) -> Cases:
    """A seeded sample of ``n`` cases (all of them when there are fewer), in their order; the
    cases left out are counted as ``not sampled``."""
    import random

    if n >= len(cases.ids):
        return cases
    keep = sorted(random.Random(seed).sample(range(len(cases.ids)), n))
    out = Cases(left_out=dict(cases.left_out) | {"not sampled (max_train_cases)": len(cases.ids) - n})
    for name in ("ids", "texts", "messages", "replies", "labels", "languages"):
        values = getattr(cases, name)
        setattr(out, name, [values[i] for i in keep])
    return out
