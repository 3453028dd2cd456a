"""Stage modules of the alignment package (each: NAME, Config, run; see medalign/stage.py).

``STAGES`` maps a stage name to a function importing its module lazily, so importing this
package stays cheap (torch and transformers load inside the stages).
"""

from __future__ import annotations

import importlib


def _module(name: str):
    return lambda: importlib.import_module(f"alignment.stages.{name}")


STAGES = {name: _module(name) for name in
          ("bootstrap", "pretrain", "sft", "sample", "reward_model", "ppo", "rsft", "dpo", "online_rl",
           "eval")}
