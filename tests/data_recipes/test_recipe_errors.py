"""Every bad-recipe error names the file, the line and the field, before any work starts."""

from __future__ import annotations

import pytest

from data_recipes.build import build
from data_recipes.recipe_load import load_recipe
from medalign.config import ConfigError

GOOD = """
name: small
seed: 0
sources:
  - name: qa
    path: ${corpus}/huatuo_real_qa_zh.jsonl
    format: huatuo_sft
    origin: real_doctor
    transforms: [scrub_pii]
  - name: distilled
    path: ${corpus}/huatuo_distilled_instructions_zh.jsonl
    format: huatuo_sft
    origin: distilled
outputs:
  sft:
    total: 100
    mix:
      - {source: qa, fraction: 0.5}
      - {source: distilled, fraction: 0.5}
"""


def problems(write_recipe, recipe_corpus, text: str, **kw) -> list[str]:
    path = write_recipe(text)
    with pytest.raises(ConfigError) as err:
        load_recipe(path, kw.get("overrides"), {"corpus": str(recipe_corpus)} if kw.get("corpus", True) else {})
    for p in err.value.problems:
        assert p.startswith((f"{path}:", f"{path} (override ")), p
    return err.value.problems


def test_good_recipe_loads(write_recipe, recipe_corpus):
    resolved = load_recipe(write_recipe(GOOD), variables={"corpus": str(recipe_corpus)})
    assert [len(f) for f in resolved.source_files] == [1, 1]
    assert len(resolved.recipe_hash) == 16


@pytest.mark.parametrize("old, new, line, field, message", [
    ("seed: 0", "sede: 0", 2, "sede", "Extra inputs are not permitted"),
    ("    format: huatuo_sft\n    origin: real_doctor\n    transforms",
     "    fromat: huatuo_sft\n    origin: real_doctor\n    transforms", 6, "sources[qa].fromat", "Extra inputs"),
    ("transforms: [scrub_pii]", "transforms: [scrub_pii, strip_emojis]", 8, "sources[qa].transforms.1", "strip_emojis"),
    ("transforms: [scrub_pii]", "transforms: [{name: filter_length, max_char: 10}]", 8,
     "sources[qa].transforms.0.filter_length.max_char", "Extra inputs"),
    ("format: huatuo_sft\n    origin: real_doctor", "format: huatuo_jsonl\n    origin: real_doctor", 6,
     "sources[qa].format", "unknown format 'huatuo_jsonl'"),
    ("origin: distilled", "origin: chatgpt", 12, "sources[distilled].origin", "unknown origin 'chatgpt'"),
    ("huatuo_real_qa_zh.jsonl", "no_such_file.jsonl", 5, "sources[qa].path", "no file matches"),
    ("${corpus}/huatuo_real_qa", "${data}/huatuo_real_qa", 5, "sources[qa].path", "--var data=VALUE"),
    ("{source: qa, fraction: 0.5}", "{source: qa, fraction: 0.6}", 16, "outputs.sft.mix", "sum to 1.1"),
    ("    total: 100\n", "", 14, "outputs.sft", "total is required"),
    ("{source: qa, fraction: 0.5}", "{source: qa, count: 50}", 17, "outputs.sft.mix.0",
     "all be fractions or all counts"),
    ("{source: qa, fraction: 0.5}", "{source: qa, fraction: 0.5, count: 3}", 17, "outputs.sft.mix.0",
     "exactly one of fraction or count"),
    ("{source: qa, fraction: 0.5}", "{source: qa, fraction: 0.5, weight: 3}", 17, "outputs.sft.mix.0.weight",
     "Extra inputs"),
    ("{source: qa, fraction: 0.5}", "{source: qq, fraction: 0.5}", 17, "outputs.sft.mix.0.source",
     "unknown source 'qq'"),
    ("{source: qa, fraction: 0.5}", "{source: qa, fraction: 0.5, build: final_turn_prompt}", 17,
     "outputs.sft.mix.0.build", "unknown builder 'final_turn_prompt' for sft"),
    ("{source: distilled, fraction: 0.5}", "{source: distilled, fraction: 0.5, build: ranked_tuples}", 18,
     "outputs.sft.mix.1.build", "unknown builder"),
])
def test_bad_recipe(write_recipe, recipe_corpus, old, new, line, field, message):
    assert old in GOOD
    found = problems(write_recipe, recipe_corpus, GOOD.replace(old, new, 1))
    hits = [p for p in found if f":{line}: {field}:" in p and message in p]
    assert hits, found


def test_missing_seed_and_unused_source(write_recipe, recipe_corpus):
    found = problems(write_recipe, recipe_corpus, GOOD.replace("seed: 0\n", ""))
    assert any(": seed: Field required" in p for p in found), found
    text = GOOD.replace("      - {source: distilled, fraction: 0.5}\n", "").replace("fraction: 0.5", "fraction: 1.0")
    found = problems(write_recipe, recipe_corpus, text)
    assert any(":9: sources[distilled].name:" in p and "not used" in p for p in found), found


def test_builder_that_cannot_use_the_format(write_recipe, recipe_corpus):
    text = GOOD + """  preferences:
    mix:
      - {source: qa, count: all}
"""
    found = problems(write_recipe, recipe_corpus, text)
    assert any(":21: outputs.preferences.mix.0.build:" in p and "format huatuo_sft gives" in p for p in found), found


def test_splits_and_bands(write_recipe, recipe_corpus):
    text = GOOD + "splits: {train: 0.9, validation: 0.2, test: 0.1}\ndedup: {near: {num_perm: 64, bands: 12}}\n"
    found = problems(write_recipe, recipe_corpus, text)
    assert any(":19: splits:" in p and "must be 1" in p for p in found), found
    assert any(":20: dedup.near.bands:" in p for p in found), found


def test_override_errors_name_the_field(write_recipe, recipe_corpus):
    found = problems(write_recipe, recipe_corpus, GOOD, overrides=["outputs.sft.total=-5"])
    assert any("outputs.sft.total" in p and "greater than 0" in p for p in found), found


def test_unmeetable_weights_fail_before_outputs_are_written(write_recipe, recipe_corpus, tmp_path):
    text = GOOD.replace("total: 100", "total: 5000")
    resolved = load_recipe(write_recipe(text), variables={"corpus": str(recipe_corpus)})
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as err:
        build(resolved, out)
    (problem,) = [p for p in err.value.problems if "mix.0" in p]
    assert ":17: outputs.sft.mix.0.fraction: asks for 2500 rows but source 'qa' gives 247" in problem
    assert "upsample: true" in problem
    assert not list(out.rglob("*.parquet")) and not (out / ".spool").exists()
    # the same mix with upsampling is met exactly
    ok = load_recipe(write_recipe(text.replace("{source: qa, fraction: 0.5}", "{source: qa, fraction: 0.5, upsample: true}")
                                  .replace("{source: distilled, fraction: 0.5}", "{source: distilled, fraction: 0.5, upsample: true}")),
                     variables={"corpus": str(recipe_corpus)})
    report = build(ok, tmp_path / "ok")
    assert report["outputs"]["sft"]["total_actual"] == 5000
