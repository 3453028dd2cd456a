"""The ``data`` stage: build a recipe into the datasets of the run (docs/CONTRACTS.md).

    stages:
      data:
        config:
          recipe: data_recipes/recipes/quickstart.yaml
          synthetic: {n_consultations: 600, seed: 0, languages: [zh]}

With ``synthetic`` set, the synthetic demo corpus is first written to ``out/corpus/`` and the
recipe variable ``${corpus}`` points there, so the stage works from a fresh clone with no data.
Without it, ``${corpus}`` (and any other variable) comes from ``variables`` or the recipe's own
defaults. Outputs: ``sft/ prompts/ preferences/ ranked/ pretrain/`` (those the recipe makes),
``build_report.json``, ``quarantine.jsonl`` (and ``corpus/`` when generated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from data_recipes.recipe_load import find_recipe, load_recipe, resolve_glob
from medalign.config import StrictModel
from medalign.stage import StageContext

NAME = "data"
INPUTS: dict = {}                         # the first stage: reads only the files of its recipe
CORPUS_DIR = "corpus"


class SyntheticCorpus(StrictModel):
    """The synthetic demo corpus (data_recipes.synthetic.generate.write_corpus)."""

    n_consultations: int = Field(600, ge=1, description="consultations in the MedDialog-format file; other files scale with it")
    seed: int = Field(0, description="generator seed (same seed, same bytes)")
    languages: list[Literal["zh", "en"]] = Field(default_factory=lambda: ["zh"], min_length=1, description="languages to write")


class Config(StrictModel):
    """Config of the data stage."""

    recipe: str = Field("data_recipes/recipes/quickstart.yaml", description="recipe: a path (relative to the current directory or the repository root) or a name in data_recipes/recipes/")
    synthetic: SyntheticCorpus | None = Field(None, description="generate the demo corpus into out/corpus/ first and set ${corpus} to it")
    variables: dict[str, str] = Field(default_factory=dict, description="values of ${name} in the recipe's paths (override the recipe's defaults)")
    overrides: list[str] = Field(default_factory=list, description="key.sub=value overrides applied to the recipe, e.g. outputs.sft.total=500")

    @model_validator(mode="after")
    def _corpus_once(self) -> "Config":
        if self.synthetic is not None and "corpus" in self.variables:
            raise ValueError("give either synthetic (the corpus is generated into out/corpus) or variables.corpus, not both")
        return self


def input_files(cfg: Config) -> list[Path]:
    """The files whose content decides the output: the recipe and the user's source files
    (not the generated corpus, whose content follows from ``cfg.synthetic``)."""
    path = find_recipe(cfg.recipe)
    resolved = load_recipe(path, cfg.overrides, cfg.variables, check_files=False)
    files = [path.resolve()]
    patterns = [s.path for s in resolved.recipe.sources]
    if resolved.recipe.decontaminate:
        patterns += [e.path for e in resolved.recipe.decontaminate.against]
    for pattern in patterns:
        if cfg.synthetic is not None and "${corpus}" in pattern:
            continue
        files += [f.resolve() for f in resolve_glob(resolved, pattern)]
    return files


def provides(cfg: Config) -> set[str]:
    """The datasets this stage will write (the recipe's outputs after overrides), for the job
    planner to check that every consumer finds what it reads before any work starts."""
    resolved = load_recipe(find_recipe(cfg.recipe), cfg.overrides, cfg.variables, check_files=False)
    return {name for name, out in resolved.recipe.outputs if out is not None}


def run(cfg: Config, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    """Generate the corpus if asked, build the recipe into ``out``; returns row counts and timings."""
    from data_recipes.build import build

    out = Path(out)
    variables = dict(cfg.variables)
    if cfg.synthetic is not None:
        from data_recipes.synthetic.generate import write_corpus

        corpus = out / CORPUS_DIR
        summary = write_corpus(corpus, n_consultations=cfg.synthetic.n_consultations,
                               seed=cfg.synthetic.seed, languages=tuple(cfg.synthetic.languages))
        ctx.logger.info("synthetic corpus: %d files in %s", len(summary.get("files", [])), corpus)
        variables["corpus"] = str(corpus.resolve())
    resolved = load_recipe(find_recipe(cfg.recipe), cfg.overrides, variables)
    report = build(resolved, out, progress=ctx.progress)
    metrics: dict = {"recipe_hash": report["recipe"]["hash"],
                     "quarantined": report["quarantine"]["total"],
                     "exact_duplicates": report["dedup"]["exact"], "near_duplicates": report["dedup"]["near"],
                     "build_s": report["timings"]["total_s"]}
    for kind, section in report["outputs"].items():
        for split, n in section["by_split"].items():
            metrics[f"{kind}_{split}"] = n
    return metrics
