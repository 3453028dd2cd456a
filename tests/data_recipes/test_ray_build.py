"""`medalign data build --ray` writes the same rows as the local build (Ray Data, local cluster)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from data_recipes.build import build
from data_recipes.recipe_load import load_recipe

RECIPE = """
name: ray_check
seed: 3
sources:
  - {name: dialogues, path: "${corpus}/meddialog_raw_zh.txt", format: meddialog_raw, origin: real_doctor,
     transforms: [merge_consecutive_speakers, normalize_roles, scrub_pii]}
  - {name: qa, path: "${corpus}/huatuo_*_en.jsonl", format: huatuo_sft, origin: distilled, transforms: [scrub_pii]}
  - {name: ranked, path: "${corpus}/ranked_zh.jsonl", format: ranked_jsonl, origin: real_doctor}
outputs:
  sft:
    total: 500
    mix:
      - {source: dialogues, fraction: 0.5}
      - {source: qa, fraction: 0.5}
  prompts:
    mix: [{source: dialogues, count: 100}]
  ranked:
    mix: [{source: ranked, count: all}]
"""


@pytest.mark.slow
def test_ray_build_writes_the_same_rows(recipe_corpus, write_recipe, tmp_path):
    """Through the command (`--ray` is wired in by jobs/cli.py): same rows, same report."""
    import json

    from medalign.cli import main

    path = write_recipe(RECIPE)
    resolved = load_recipe(path, variables={"corpus": str(recipe_corpus)})
    local = build(resolved, tmp_path / "local")
    assert main(["data", "build", str(path), "--var", f"corpus={recipe_corpus}", "--out", str(tmp_path / "ray"),
                 "--ray", "--quiet"]) == 0
    remote = json.loads((tmp_path / "ray" / "build_report.json").read_text(encoding="utf-8"))
    assert remote["outputs"] == local["outputs"] and remote["sources"] == local["sources"]
    for kind in ("sft", "prompts", "ranked"):
        for split in ("train", "validation", "test"):
            a = pq.read_table(tmp_path / "local" / kind / f"{split}.parquet")
            b = pq.read_table(tmp_path / "ray" / kind / f"{split}.parquet")
            assert a.num_rows > 0 and a.equals(b), (kind, split)
