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
    from jobs.ray_data_build import build_with_ray

    resolved = load_recipe(write_recipe(RECIPE), variables={"corpus": str(recipe_corpus)})
    local = build(resolved, tmp_path / "local")
    remote = build_with_ray(resolved, tmp_path / "ray", progress=False, num_cpus=2)
    assert remote["outputs"] == local["outputs"] and remote["sources"] == local["sources"]
    for kind in ("sft", "prompts", "ranked"):
        for split in ("train", "validation", "test"):
            a = pq.read_table(tmp_path / "local" / kind / f"{split}.parquet")
            b = pq.read_table(tmp_path / "ray" / kind / f"{split}.parquet")
            assert a.num_rows > 0 and a.equals(b), (kind, split)
