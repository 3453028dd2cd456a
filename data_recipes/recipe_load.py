"""Load a recipe and check everything that can be checked before any work starts.

    resolved = load_recipe("data_recipes/recipes/quickstart.yaml", variables={"corpus": "/tmp/c"})

Problems are collected and raised together as one :class:`medalign.config.ConfigError`, each
naming the file, the line and the field: an unknown key or transform (schema), an unknown
format, origin, source or builder, a ``${var}`` with no value, a path that matches no file,
weights that cannot mean anything (fractions not summing to 1, fractions without ``total``,
fractions mixed with counts), splits not summing to 1.

Path rule: ``${name}`` is replaced by the value given on the command line / by the data stage,
else by the recipe's ``variables``; a relative path is then taken relative to the folder of the
recipe file (never the current directory), so a recipe builds the same data wherever it is run.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

from data_recipes.recipe import BUILTIN_ORIGINS, Output, Recipe
from data_recipes.transforms import BUILDER_KINDS, BUILDERS, DEFAULT_BUILDER, OUTPUT_KINDS
from medalign.config import ConfigError, apply_overrides, config_hash, line_of, load_yaml, validate_mapping

# Record kinds each reader yields (used to reject a builder that cannot use a source's records
# before reading anything; a reader may yield fewer kinds, never others).
FORMAT_KINDS: dict[str, frozenset[str]] = {
    "meddialog_raw": frozenset({"dialogue"}),
    "meddialog_json": frozenset({"dialogue"}),
    "huatuo_sft": frozenset({"dialogue", "qa"}),
    "cmd_pretrain": frozenset({"text"}),
    "cmd_finetune": frozenset({"qa"}),
    "cmd_reward": frozenset({"preference"}),
    "ranked_jsonl": frozenset({"ranked"}),
    "sharegpt": frozenset({"dialogue", "qa"}),
    "openai_messages": frozenset({"dialogue", "qa"}),
    "alpaca": frozenset({"qa"}),
    "kuake_qic": frozenset({"dialogue", "qa"}),
    "huatuo_meddialog_cases": frozenset({"dialogue", "qa"}),
    "safety_prompts": frozenset({"qa"}),
    "medalign_eval_cases": frozenset({"dialogue", "qa"}),
}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class ResolvedRecipe:
    """A validated recipe with its files found and its hash computed."""

    recipe: Recipe
    path: Path
    data: dict                                   # the parsed YAML (with line numbers)
    variables: dict[str, str]                    # resolved values of ${name}
    recipe_hash: str                             # config_hash of the validated recipe
    source_files: list[list[Path]] = field(default_factory=list)   # per source, sorted
    eval_files: list[list[Path]] = field(default_factory=list)     # per decontaminate.against

    def where(self, loc: tuple) -> str:
        """``file:line: dotted.field`` for a location in the recipe (for error messages); a
        source is named by its name, ``sources[doctor_dialogues].format``, not by its index."""
        line = line_of(self.data, loc)
        dotted = field_path(self.data, loc)
        return f"{self.path}:{line}: {dotted}" if line else f"{self.path}: {dotted}"


def field_path(data: dict, loc: tuple) -> str:
    """The dotted path of ``loc``, with ``sources.<i>`` written ``sources[<name>]`` when the
    source has a name (a recipe's reader finds a source by its name, not by counting)."""
    parts = [str(p) for p in loc]
    if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
        name = _source_name(data, loc[1])
        if name:
            parts[:2] = [f"sources[{name}]"]
    return ".".join(parts)


def _source_name(data: dict, index: int) -> str | None:
    sources = data.get("sources") if isinstance(data, dict) else None
    if isinstance(sources, list) and 0 <= index < len(sources) and isinstance(sources[index], dict):
        name = sources[index].get("name")
        return name if isinstance(name, str) and name else None
    return None


_SOURCE_INDEX = re.compile(r"(?<=: )sources\.(\d+)(?=[.:])")


def _name_sources(problems: list[str], data: dict) -> list[str]:
    """Schema problems with ``sources.<i>`` replaced by ``sources[<name>]`` (see field_path)."""
    def named(m: re.Match) -> str:
        name = _source_name(data, int(m.group(1)))
        return f"sources[{name}]" if name else m.group(0)
    return [_SOURCE_INDEX.sub(named, p, count=1) for p in problems]


def load_recipe(path: str | Path, overrides: list[str] | None = None,
                variables: dict[str, str] | None = None, check_files: bool = True) -> ResolvedRecipe:
    """Parse, validate and check a recipe; raises ConfigError listing every problem found."""
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: expected a mapping at the top level, got {type(data).__name__}"])
    apply_overrides(data, overrides or [])
    try:
        recipe = validate_mapping(data, Recipe, source=path)
    except ConfigError as e:
        raise ConfigError(_name_sources(e.problems, data)) from None
    resolved = ResolvedRecipe(recipe=recipe, path=path, data=data,
                              variables={**recipe.variables, **(variables or {})},
                              recipe_hash=config_hash(recipe))
    problems = check_recipe(resolved)
    if check_files:
        problems += _find_files(resolved)
    if problems:
        raise ConfigError(problems)
    return resolved


def check_recipe(r: ResolvedRecipe) -> list[str]:
    """Cross-reference checks that need no file access; returns problems (``file:line: field: msg``)."""
    from data_recipes.readers import FORMATS

    recipe, problems = r.recipe, []
    names: dict[str, int] = {}
    origins = set(BUILTIN_ORIGINS) | set(recipe.origins)
    for i, src in enumerate(recipe.sources):
        if src.name in names:
            problems.append(f"{r.where(('sources', i, 'name'))}: duplicate source name {src.name!r} "
                            f"(also the name of source number {names[src.name] + 1} of the list)")
        names.setdefault(src.name, i)
        if src.origin not in origins:
            problems.append(f"{r.where(('sources', i, 'origin'))}: unknown origin {src.origin!r}; use one of {sorted(origins)} or declare it under `origins:`")
        if src.format not in FORMATS:
            problems.append(f"{r.where(('sources', i, 'format'))}: unknown format {src.format!r}; known: {', '.join(sorted(FORMATS))}")
    for j, ev in enumerate(recipe.decontaminate.against if recipe.decontaminate else []):
        if ev.format not in FORMATS:
            problems.append(f"{r.where(('decontaminate', 'against', j, 'format'))}: unknown format {ev.format!r}; known: {', '.join(sorted(FORMATS))}")
    outputs = {k: getattr(recipe.outputs, k) for k in OUTPUT_KINDS if getattr(recipe.outputs, k) is not None}
    if not outputs and not recipe.outputs.eval:
        problems.append(f"{r.where(('outputs',))}: no output: give at least one of {', '.join(OUTPUT_KINDS)}, eval")
    used = set()
    for kind, out in outputs.items():
        problems += _check_output(r, kind, out, names)
        used |= {c.source for c in out.mix}
    problems += _check_eval_outputs(r, names, outputs)
    used |= {e.source for e in recipe.outputs.eval or []}
    for i, src in enumerate(recipe.sources):
        if src.name not in used:
            problems.append(f"{r.where(('sources', i, 'name'))}: source {src.name!r} is not used by any output's mix")
    split_sum = recipe.splits.train + recipe.splits.validation + recipe.splits.test
    if abs(split_sum - 1) > 1e-6:
        problems.append(f"{r.where(('splits',))}: train + validation + test = {split_sum:g}, must be 1")
    near = recipe.dedup.near
    if near is not None and near.num_perm % near.bands:
        problems.append(f"{r.where(('dedup', 'near', 'bands'))}: bands={near.bands} must divide num_perm={near.num_perm}")
    return problems


def _check_eval_outputs(r: ResolvedRecipe, names: dict[str, int], outputs: dict[str, Output]) -> list[str]:
    """Eval sets name known sources, unique names, and never a source a training output uses."""
    problems, seen = [], set()
    trained = {c.source: kind for kind, out in outputs.items() for c in out.mix}
    for j, ev in enumerate(r.recipe.outputs.eval or []):
        at = ("outputs", "eval", j)
        if ev.name in seen:
            problems.append(f"{r.where((*at, 'name'))}: duplicate eval set name {ev.name!r}")
        seen.add(ev.name)
        if ev.source not in names:
            problems.append(f"{r.where((*at, 'source'))}: unknown source {ev.source!r}; sources are {sorted(names)}")
        elif ev.source in trained:
            problems.append(f"{r.where((*at, 'source'))}: source {ev.source!r} is an eval set and also feeds "
                            f"outputs.{trained[ev.source]}: an eval set is never trained on; give the training "
                            f"output another source")
    near = r.recipe.eval_overlap
    if near.num_perm % near.bands:
        problems.append(f"{r.where(('eval_overlap', 'bands'))}: bands={near.bands} must divide num_perm={near.num_perm}")
    return problems


def eval_source_indices(recipe: Recipe) -> set[int]:
    """Positions (in ``recipe.sources``) of the sources that feed an eval set."""
    names = {e.source for e in recipe.outputs.eval or []}
    return {i for i, s in enumerate(recipe.sources) if s.name in names}


def shared_eval_files(r: ResolvedRecipe) -> list[str]:
    """Problems: a file read by an eval source and by a training source (the same records would
    be evaluated and trained on)."""
    evals = eval_source_indices(r.recipe)
    trained: dict[Path, int] = {}
    for i, files in enumerate(r.source_files):
        if i not in evals:
            trained.update({Path(f).resolve(): i for f in files})
    problems = []
    for i in sorted(evals):
        for f in r.source_files[i] if i < len(r.source_files) else []:
            other = trained.get(Path(f).resolve())
            if other is not None:
                problems.append(f"{r.where(('sources', i, 'path'))}: file {f} of eval source "
                                f"{r.recipe.sources[i].name!r} is also read by training source "
                                f"{r.recipe.sources[other].name!r}: an eval set is never trained on")
    return problems


def _check_output(r: ResolvedRecipe, kind: str, out: Output, names: dict[str, int]) -> list[str]:
    problems = []
    loc = ("outputs", kind)
    for i, comp in enumerate(out.mix):
        at = (*loc, "mix", i)
        if comp.source not in names:
            problems.append(f"{r.where((*at, 'source'))}: unknown source {comp.source!r}; sources are {sorted(names)}")
        build = comp.build or DEFAULT_BUILDER[kind]
        if build not in BUILDERS[kind]:
            problems.append(f"{r.where((*at, 'build'))}: unknown builder {build!r} for {kind}; known: {', '.join(BUILDERS[kind])}")
        elif comp.source in names:
            fmt = r.recipe.sources[names[comp.source]].format
            if fmt in FORMAT_KINDS and not FORMAT_KINDS[fmt] & BUILDER_KINDS[build]:
                problems.append(f"{r.where((*at, 'build'))}: {build} needs {sorted(BUILDER_KINDS[build])} records; "
                                f"format {fmt} gives {sorted(FORMAT_KINDS[fmt])}")
        if (comp.fraction is None) == (comp.count is None):
            problems.append(f"{r.where(at)}: give exactly one of fraction or count")
        if comp.count == "all" and comp.upsample:
            problems.append(f"{r.where((*at, 'upsample'))}: upsample has no meaning with count: all")
    fractions = [c.fraction for c in out.mix if c.fraction is not None]
    if fractions and len(fractions) < len(out.mix):
        i = next(i for i, c in enumerate(out.mix) if c.fraction is None)
        problems.append(f"{r.where((*loc, 'mix', i))}: weights of one output must all be fractions or all counts")
    elif fractions:
        if out.total is None:
            problems.append(f"{r.where(loc)}: total is required when the weights are fractions")
        if abs(sum(fractions) - 1) > 1e-6:
            problems.append(f"{r.where((*loc, 'mix'))}: fractions sum to {sum(fractions):g}, must sum to 1")
        if out.total is not None and out.total < len(fractions):
            problems.append(f"{r.where((*loc, 'total'))}: total={out.total} is smaller than the number of components")
    elif out.total is not None:
        problems.append(f"{r.where((*loc, 'total'))}: total is only for fractions; with counts the total is their sum")
    return problems


def substitute(text: str, variables: dict[str, str]) -> str:
    """Replace ``${name}``; raises KeyError(name) for a variable with no value."""
    return _VAR.sub(lambda m: variables[m.group(1)], text)


def resolve_glob(r: ResolvedRecipe, pattern: str) -> list[Path]:
    """Files a source path names (after substitution, relative to the recipe folder), sorted."""
    text = str(Path(substitute(pattern, r.variables)).expanduser())
    full = text if Path(text).is_absolute() else str(r.path.parent / text)
    if glob.has_magic(full):
        return sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())
    return [Path(full)] if Path(full).is_file() else []


def _find_files(r: ResolvedRecipe) -> list[str]:
    problems = []
    entries = [(("sources", i, "path"), s.path) for i, s in enumerate(r.recipe.sources)]
    entries += [(("decontaminate", "against", j, "path"), e.path)
                for j, e in enumerate(r.recipe.decontaminate.against if r.recipe.decontaminate else [])]
    found = []
    for loc, pattern in entries:
        try:
            files = resolve_glob(r, pattern)
        except KeyError as e:
            problems.append(f"{r.where(loc)}: variable ${{{e.args[0]}}} has no value; set it under `variables:` "
                            f"or pass --var {e.args[0]}=VALUE")
            files = []
        else:
            if not files:
                problems.append(f"{r.where(loc)}: no file matches {pattern!r} "
                                f"(resolved: {substitute(pattern, r.variables)!r}, relative to {r.path.parent})")
        found.append(files)
    n = len(r.recipe.sources)
    r.source_files, r.eval_files = found[:n], found[n:]
    return problems + shared_eval_files(r)


RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
REPO_ROOT = Path(__file__).resolve().parent.parent


def find_recipe(name: str | Path) -> Path:
    """Where a recipe argument points: an existing path (relative to the current directory),
    else the same path under the repository root, else a name in data_recipes/recipes/
    (``quickstart`` or ``quickstart.yaml``). ConfigError lists the places tried."""
    tried = [Path(name), REPO_ROOT / name, RECIPES_DIR / name, RECIPES_DIR / f"{name}.yaml"]
    for path in tried:
        if path.is_file():
            return path
    raise ConfigError([f"recipe {str(name)!r} not found; tried: {', '.join(str(p) for p in tried)}"])
