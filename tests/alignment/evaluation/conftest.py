"""Eval sets for the evaluation tests: a recipe with only ``outputs.eval``, built for real."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
RECIPE = """
name: eval_only
seed: 0
origins: [eval]
sources:
  - {name: single, path: "${corpus}/eval_single_turn_zh.jsonl", format: medalign_eval_cases, origin: eval}
  - {name: multi, path: "${corpus}/eval_multi_turn_en.jsonl", format: medalign_eval_cases, origin: eval}
  - {name: kuake, path: "%s", format: kuake_qic, origin: eval, language: zh}
outputs:
  eval:
    - {name: single_zh, source: single}
    - {name: multi_en, source: multi}
    - {name: kuake_real, source: kuake, max_cases: 4}
"""


@pytest.fixture(scope="session")
def eval_data_dir(tmp_path_factory) -> Path:
    """A data directory whose eval/ holds three sets: 10 single-turn zh cases (one per intent),
    20 multi-turn en cases (one per department) and 4 real KUAKE-QIC queries (no ground truth)."""
    from data_recipes.build import build
    from data_recipes.recipe_load import load_recipe
    from data_recipes.synthetic.generate import FILES, write_corpus

    base = tmp_path_factory.mktemp("eval_data")
    sizes = {f.key: 0 for f in FILES} | {"eval_single_turn": 10, "eval_multi_turn": 20}
    write_corpus(base / "corpus", n_consultations=0, seed=3, languages=("zh", "en"), sizes=sizes)
    recipe = base / "recipe.yaml"
    recipe.write_text(textwrap.dedent(RECIPE % (REPO / "tests/fixtures/real/kuake_qic_100.json")), encoding="utf-8")
    build(load_recipe(recipe, variables={"corpus": str(base / "corpus")}), base / "data")
    return base / "data"


@pytest.fixture(scope="session")
def third_model_dir(tmp_path_factory, tiny_sft_model_dir) -> Path:
    """Another checkpoint: the tiny SFT model with its weights nudged (a different digest)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_sft_model_dir)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    out = tmp_path_factory.mktemp("third") / "model"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_sft_model_dir).save_pretrained(out)
    return out
