"""The parser on a corpus of real judge reply styles (tests/judges/data/parser_corpus.yaml).

Run as a script to print the outcome of every style:
``PYTHONPATH=. python tests/judges/test_parser_corpus.py``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from judges.flags import flag_names, parroted
from judges.parsers import parse_completion
from judges.templates import load_template

CORPUS = Path(__file__).resolve().parent / "data" / "parser_corpus.yaml"


def _corpus() -> list[dict]:
    return yaml.safe_load(CORPUS.read_text(encoding="utf-8"))


def _outcome(entry: dict):
    spec = load_template(entry.get("template", "huatuo_pairwise"))
    parsed = parse_completion(spec, entry["text"], entry.get("finish_reason"))
    candidates = entry.get("candidates") or {}
    flags = flag_names(parroted(parsed.statement, candidates, {k: k for k in candidates}))
    return parsed, flags


def test_the_corpus_is_large_and_covers_both_languages_and_every_status():
    entries = _corpus()
    assert len(entries) >= 40 and len({e["style"] for e in entries}) == len(entries)
    assert {e["lang"] for e in entries} == {"en", "zh"}
    assert {e["status"] for e in entries} == {"ok", "parse_error", "refused", "out_of_range"}


@pytest.mark.parametrize("entry", _corpus(), ids=lambda e: e["style"])
def test_reply_style(entry):
    parsed, flags = _outcome(entry)
    assert parsed.status == entry["status"], parsed.error
    if entry["status"] == "ok":
        assert parsed.scores == {k: float(v) for k, v in entry["scores"].items()}
        start, end = parsed.span
        assert entry["text"][start:end] == parsed.statement
        if "statement" in entry:
            assert parsed.statement == entry["statement"]
    else:
        assert parsed.scores is None and parsed.error
    assert flags == sorted(entry.get("flags") or [])


if __name__ == "__main__":
    totals: Counter = Counter()
    for e in _corpus():
        parsed, flags = _outcome(e)
        totals[(e["lang"], parsed.status)] += 1
        mark = "" if parsed.status == e["status"] else f"  (EXPECTED {e['status']})"
        read = f" read {parsed.statement!r}" if parsed.statement else ""
        print(f"{e['style']:<44} {e['lang']}  {parsed.status:<12}{read}"
              f"{'  flags ' + ','.join(flags) if flags else ''}{mark}")
    print("by language and status:", dict(sorted(totals.items())))
