"""Stage kinds, their modules, and the default wiring of a pipeline.

Each kind maps to a module following ``medalign.stage`` (NAME, Config, run). ``DEFAULT_INPUTS``
says, for each input of a kind, which stage kinds may feed it by default, first present wins:
``sft.model`` comes from ``pretrain`` when the job has one, else from ``bootstrap``. A job entry's
``inputs`` overrides this with a stage name or an external path / hub id.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from medalign.config import ConfigError, StrictModel, validate_mapping

STAGE_MODULES: dict[str, str] = {
    "data": "data_recipes.stage",
    "bootstrap": "alignment.stages.bootstrap",
    "pretrain": "alignment.stages.pretrain",
    "sft": "alignment.stages.sft",
    "sample": "alignment.stages.sample",
    "judge": "judges.stage",
    "reward_model": "alignment.stages.reward_model",
    "ppo": "alignment.stages.ppo",
    "rsft": "alignment.stages.rsft",
    "dpo": "alignment.stages.dpo",
    "online_rl": "alignment.stages.online_rl",
    "eval": "alignment.stages.eval",
}

# input name -> candidate upstream kinds, first present wins
DEFAULT_INPUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "data": {},
    "bootstrap": {"data": ("data",)},
    "pretrain": {"data": ("data",), "model": ("bootstrap",)},
    "sft": {"data": ("data",), "model": ("pretrain", "bootstrap")},
    "sample": {"data": ("data",), "policy": ("sft",)},
    "judge": {"samples": ("sample",)},
    "reward_model": {"pairs": ("judge", "data"), "backbone": ("sft",)},
    "ppo": {"data": ("data",), "policy": ("sft",), "reward_model": ("reward_model",)},
    "rsft": {"data": ("data",), "policy": ("sft",), "reward_model": ("reward_model",)},
    "dpo": {"pairs": ("judge", "data"), "policy": ("sft",)},
    "online_rl": {"data": ("data",), "policy": ("sft",), "reward_model": ("reward_model",)},
    "eval": {"data": ("data",), "policy": ("ppo", "rsft", "dpo", "online_rl", "sft"), "baseline": ("sft",),
             "reward_model": ("reward_model",), "pairs": ("judge", "data")},
}

# (kind, input) pairs a stage can run without: left out when no upstream stage can feed them
# (rsft scored by a judge, GRPO/RLOO on a programmatic reward need no reward model)
OPTIONAL_INPUTS = frozenset({("rsft", "reward_model"), ("online_rl", "reward_model")})

# (kind, input) -> datasets the stage reads from a ``data`` stage's directory (any one suffices);
# checked at plan time against the recipe's outputs, so a recipe without ``prompts`` fails before
# any work starts instead of after an hour of SFT
DATA_NEEDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("bootstrap", "data"): ("sft",),
    ("pretrain", "data"): ("pretrain",),
    ("sft", "data"): ("sft",),
    ("sample", "data"): ("prompts",),
    ("ppo", "data"): ("prompts",),
    ("rsft", "data"): ("prompts",),
    ("online_rl", "data"): ("prompts",),
    ("eval", "data"): ("prompts",),
    ("reward_model", "pairs"): ("preferences", "ranked"),
    ("dpo", "pairs"): ("preferences", "ranked"),
}

# inputs that name a model checkpoint: an upstream stage gives its out/model directory
MODEL_INPUTS = frozenset({"model", "policy", "baseline", "backbone", "reward_model"})


def stage_module(kind: str) -> ModuleType:
    """Import the module of a stage kind: a built-in kind, or a dotted module path of your own
    (``kind: mypkg.stages.filter``) that follows the stage protocol and declares ``INPUTS``."""
    if kind in STAGE_MODULES:
        return importlib.import_module(STAGE_MODULES[kind])
    if "." in kind:
        return importlib.import_module(kind)
    raise KeyError(kind)


def default_inputs(kind: str) -> dict[str, tuple[str, ...]]:
    """Input name -> candidate upstream kinds for a stage kind."""
    if kind in DEFAULT_INPUTS:
        return DEFAULT_INPUTS[kind]
    return dict(getattr(stage_module(kind), "INPUTS", {}))


def validate_stage_config(kind: str, data: dict, source: str | Path, prefix: str) -> StrictModel:
    """Validate one stage's ``config`` mapping against its module's Config."""
    return validate_mapping(data or {}, stage_module(kind).Config, source=source, prefix=prefix)


def check_kind(name: str, kind: str, source: str | Path, line: int | None) -> None:
    """Fail with file and line unless ``kind`` names a stage module that follows the protocol."""
    where = f"{source}:{line}" if line else str(source)
    try:
        module = stage_module(kind)
    except (KeyError, ImportError) as e:
        raise ConfigError([f"{where}: stages.{name}.kind: unknown stage kind {kind!r} ({e}); "
                           f"known: {', '.join(STAGE_MODULES)}, or a dotted module path"]) from None
    missing = [a for a in ("NAME", "Config", "run") if not hasattr(module, a)]
    if missing:
        raise ConfigError([f"{where}: stages.{name}.kind: module {module.__name__} lacks {missing}"])
