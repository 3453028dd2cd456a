"""Where stage modules are found: the built-in kinds, or a dotted module path of your own.

This is the one list of stage kinds. Everything else about a stage (its config, its inputs,
which datasets it reads, its acceptance rule) is declared in its module (see
:mod:`medalign.stage`) and read from there by the job planner, ``medalign train`` and the docs.
The list holds module paths, not modules, so a job imports only the stages it uses (and none of
them imports torch at module level).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from medalign.config import ConfigError
from medalign.stage import REQUIRED_NAMES, Input, declared_inputs, input_prefixes

BUILTIN_STAGES: dict[str, str] = {
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
    "rm_agreement": "alignment.stages.rm_agreement",
    "transfer_eval": "alignment.stages.transfer_eval",
    "bias": "alignment.stages.bias",
    "router": "alignment.stages.router",
    "routing_gain": "alignment.stages.routing_gain",
    "policy_routing": "alignment.stages.policy_routing",
    "doctor_rank": "alignment.stages.doctor_rank",
}


def stage_module(kind: str) -> ModuleType:
    """Import the module of a stage kind: a built-in kind, or a dotted module path of your own
    (``kind: mypkg.stages.filter``) that follows the stage protocol.

    Raises ``KeyError`` for a name that is neither, ``ImportError`` when the module is missing.
    """
    if kind in BUILTIN_STAGES:
        return importlib.import_module(BUILTIN_STAGES[kind])
    if "." in kind:
        return importlib.import_module(kind)
    raise KeyError(kind)


def checked_stage_module(kind: str, where: str) -> ModuleType:
    """:func:`stage_module`, failing with one ``ConfigError`` line (prefixed by ``where``) when
    the kind is unknown or its module lacks ``NAME``, ``Config`` or ``run``."""
    try:
        module = stage_module(kind)
    except (KeyError, ImportError) as e:
        reason = f" ({e})" if isinstance(e, ImportError) else ""
        raise ConfigError([f"{where}: unknown stage kind {kind!r}{reason}; known: "
                           f"{', '.join(BUILTIN_STAGES)}, or a dotted module path"]) from None
    missing = [a for a in REQUIRED_NAMES if not hasattr(module, a)]
    if missing:
        raise ConfigError([f"{where}: module {module.__name__} lacks {', '.join(missing)} "
                           f"(see medalign/stage.py)"])
    return module


def stage_inputs(kind: str) -> dict[str, Input]:
    """Input name -> :class:`Input` declaration of a stage kind."""
    return declared_inputs(stage_module(kind))


def stage_input_prefixes(kind: str) -> dict[str, Input]:
    """Input-name prefix -> :class:`Input` of the inputs a stage kind takes any number of."""
    return input_prefixes(stage_module(kind))


def kinds_in(package: str) -> list[str]:
    """Built-in kinds whose module lives in ``package`` (``alignment``: what ``medalign train`` runs)."""
    return [k for k, path in BUILTIN_STAGES.items() if path.startswith(package + ".")]
