"""Token estimates, call cost from a price table, and the run budget.

The budget reserves each call's worst case before the call starts (estimated prompt tokens plus
``max_tokens``, priced) and settles it with the reported usage afterwards. A call that would push
reserved + spent past a limit is not started: the run stops cleanly, every finished judgment is
kept, and the next run continues from where this one stopped. Limits are therefore never passed,
as long as the prompt estimate is not below the endpoint's count (it is deliberately generous).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from judges.config import BudgetConfig, PriceConfig

def estimate_tokens(messages: list[dict]) -> int:
    """A generous prompt-token estimate: 1.5 per CJK (3-byte UTF-8) character, 1 per 3 other
    characters, plus 4 per message for the chat format. (No tokenizer is assumed: judges vary.)"""
    total = 0
    for m in messages:
        text = m.get("content") or ""
        wide = (len(text.encode("utf-8")) - len(text)) // 2     # ~ characters of 3 bytes
        total += math.ceil(1.5 * wide + (len(text) - wide) / 3.0) + 4
    return total + 3


def call_cost(price: PriceConfig, prompt_tokens: int, completion_tokens: int,
              free: bool = False) -> float | None:
    """Cost of one call; 0 for the local server, None when the price is unknown."""
    if free:
        return 0.0
    if not price.known:
        return None
    return (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1e6


@dataclass
class Budget:
    """Reservations and spending against a :class:`BudgetConfig`. Single event loop only."""

    limits: BudgetConfig
    price: PriceConfig
    free: bool = False                    # local server: cost is 0 whatever the price table
    calls: int = 0
    tokens: int = 0
    cost: float = 0.0
    cost_known: bool = True
    _res_calls: int = 0
    _res_tokens: int = 0
    _res_cost: float = 0.0
    stopped: str | None = None            # why the budget stopped the run, if it did
    notes: list[str] = field(default_factory=list)

    def try_reserve(self, est_prompt: int, max_completion: int) -> tuple[int, float] | None:
        """Reserve one call; None (and ``stopped`` set) when a limit would be passed."""
        tokens = est_prompt + max_completion
        cost = call_cost(self.price, est_prompt, max_completion, self.free) or 0.0
        lim = self.limits
        if lim.max_calls is not None and self.calls + self._res_calls + 1 > lim.max_calls:
            self.stopped = f"max_calls={lim.max_calls} reached"
        elif lim.max_tokens is not None and self.tokens + self._res_tokens + tokens > lim.max_tokens:
            self.stopped = f"max_tokens={lim.max_tokens} would be passed"
        elif lim.max_cost is not None and self.cost + self._res_cost + cost > lim.max_cost:
            self.stopped = f"max_cost={lim.max_cost} would be passed"
        if self.stopped:
            return None
        self._res_calls += 1
        self._res_tokens += tokens
        self._res_cost += cost
        return tokens, cost

    def spend(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        """Count a call that an earlier run reserved (a batch it started and this run collects)."""
        self._res_calls += 1
        return self.settle((0, 0.0), prompt_tokens, completion_tokens)

    def settle(self, reservation: tuple[int, float], prompt_tokens: int | None,
               completion_tokens: int | None) -> float | None:
        """Replace a reservation by what the call used. Returns the call's cost."""
        tokens, cost = reservation
        self._res_calls -= 1
        self._res_tokens -= tokens
        self._res_cost -= cost
        self.calls += 1
        if prompt_tokens is None or completion_tokens is None:
            # usage not reported: count the reservation, the conservative figure
            self.tokens += tokens
            self.cost += cost
            return None if not self.free and not self.price.known else cost
        self.tokens += prompt_tokens + completion_tokens
        actual = call_cost(self.price, prompt_tokens, completion_tokens, self.free)
        if actual is None:
            self.cost_known = False
            return None
        self.cost += actual
        return actual
