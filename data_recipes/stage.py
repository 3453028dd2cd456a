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
``eval/<set>.parquet`` (the recipe's eval sets),
``build_report.json``, ``quarantine.jsonl`` (and ``corpus/`` when generated). Rerunning the stage
on the same inputs writes the same bytes (no timings or absolute paths in them): its timings
and the absolute paths of its inputs are in the metrics (``timings``, ``run``) of the manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal

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
    sizes: dict[str, int] = Field(default_factory=dict, description="records per corpus file key, overriding the defaults (e.g. {realmeddial: 600} writes the RealMedDial-shaped file, {meddialog_outbreak: 1088} the new-outbreak family (data/outbreak.yaml), MedDialog's small transfer target; 0 skips a file)")


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


def build_recipe(recipe: str | Path, overrides: list[str], variables: dict[str, str], out: str | Path,
                 synthetic: SyntheticCorpus | None = None, progress: bool = False,
                 backend: Callable[..., dict] | None = None, log: Callable[[str], None] = lambda s: None) -> dict:
    """Build a recipe into ``out``, first writing the synthetic demo corpus when ``synthetic`` is
    given (into the build's staging folder, so it lands in ``out/corpus`` with the outputs, and
    ``${corpus}`` points at it). ``backend``: a build function like ``data_recipes.build.build``
    (``--ray`` passes jobs' Ray build). Returns the build report (see ``build``)."""
    from data_recipes.build import build
    from data_recipes.staging import Staging

    staging = Staging(out)
    variables = dict(variables)
    try:
        if synthetic is not None:
            from data_recipes.synthetic.generate import write_corpus

            corpus = staging.dir / CORPUS_DIR
            summary = write_corpus(corpus, n_consultations=synthetic.n_consultations, seed=synthetic.seed,
                                   languages=tuple(synthetic.languages), sizes=synthetic.sizes)
            log(f"synthetic corpus: {len(summary.get('files', []))} files")
            variables["corpus"] = str(corpus)
        resolved = load_recipe(find_recipe(recipe), overrides, variables)
    except BaseException:
        staging.abort()
        raise
    return (backend or build)(resolved, out, progress=progress, staging=staging)


def run(cfg: Config, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    """Generate the corpus if asked, build the recipe into ``out``; returns row counts, and the
    build's timings and absolute paths (they go to the manifest, never into the hashed outputs)."""
    report = build_recipe(cfg.recipe, cfg.overrides, cfg.variables, out, cfg.synthetic, ctx.progress,
                          log=ctx.logger.info)
    metrics: dict = {"recipe_hash": report["recipe"]["hash"],
                     "quarantined": report["quarantine"]["total"],
                     "exact_duplicates": report["dedup"]["exact"], "near_duplicates": report["dedup"]["near"],
                     "warnings": len(report["warnings"]),
                     "build_s": report["timings"]["total_s"], "timings": report["timings"], "run": report["run"]}
    for kind, section in report["outputs"].items():
        for split, n in section["by_split"].items():
            metrics[f"{kind}_{split}"] = n
    if report.get("eval"):
        metrics["eval_cases"] = {name: s["cases"] for name, s in report["eval"]["sets"].items()}
        metrics["eval_overlap_removed"] = sum(report["eval"]["removed_training_rows"].values())
    return metrics
