"""KL coefficient controllers: a fixed beta, or the adaptive one of Ziegler et al. (2019).

The adaptive controller nudges beta so the measured KL(pi || pi_ref) tracks a target:

    error = clip(KL / target - 1, -0.2, 0.2)
    beta <- beta * (1 + error * n_steps / horizon)

(``n_steps`` = samples seen since the last update, ``horizon`` = samples over which to react).
Both controllers carry their whole state in :meth:`state_dict` so a resumed run continues with
the very same beta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["KLController", "FixedKLController", "AdaptiveKLController", "make_kl_controller"]


class KLController(Protocol):
    value: float

    def update(self, current_kl: float, n_steps: int) -> None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class FixedKLController:
    """beta stays at ``value`` (HuatuoGPT used a fixed 0.05)."""

    value: float

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing to adapt."""

    def state_dict(self) -> dict:
        return {"kind": "fixed", "value": self.value}

    def load_state_dict(self, state: dict) -> None:
        _check_kind(state, "fixed")
        self.value = float(state["value"])


@dataclass
class AdaptiveKLController:
    """Proportional controller on log(beta) towards ``target`` KL (nats per sequence)."""

    value: float
    target: float
    horizon: int
    max_error: float = 0.2  # clip on the proportional error, as in Ziegler et al.

    def __post_init__(self) -> None:
        if not (self.value > 0 and self.target > 0 and self.horizon > 0):
            raise ValueError(f"adaptive KL controller needs value, target, horizon > 0, got "
                             f"{self.value}, {self.target}, {self.horizon}")

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -self.max_error), self.max_error)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict:
        return {"kind": "adaptive", "value": self.value, "target": self.target,
                "horizon": self.horizon, "max_error": self.max_error}

    def load_state_dict(self, state: dict) -> None:
        _check_kind(state, "adaptive")
        self.value = float(state["value"])
        self.target, self.horizon = float(state["target"]), int(state["horizon"])
        self.max_error = float(state["max_error"])


def _check_kind(state: dict, kind: str) -> None:
    if state.get("kind") != kind:
        raise ValueError(f"KL controller state is of kind {state.get('kind')!r}, expected {kind!r}")


def make_kl_controller(coef: float, adaptive: bool, target: float | None = None,
                       horizon: int | None = None) -> KLController:
    """A fixed controller, or an adaptive one (then ``target`` and ``horizon`` are required)."""
    if not adaptive:
        return FixedKLController(coef)
    if target is None or horizon is None:
        raise ValueError("an adaptive KL controller needs target and horizon")
    return AdaptiveKLController(coef, target, horizon)
