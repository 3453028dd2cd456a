"""A leaderboard from pairwise referee outcomes: Bradley-Terry strengths with bootstrap intervals.

Bradley-Terry: P(i beats j) = p_i / (p_i + p_j). The strengths maximising the likelihood of the
observed outcomes are found with Hunter's (2004) MM iteration

    p_i <- W_i / sum_j N_ij / (p_i + p_j)

(W_i: wins of i, a tie counting half a win for each side; N_ij: games between i and j), then
reported on the log scale, centred: ``strength_i = log p_i - mean_k log p_k``; ``elo`` is the
same number on the Elo scale (400 / ln 10 per unit, centred on 1000). ``prior`` adds that many
virtual games between every two models, half won by each: it keeps the strengths finite when a
model never wins or never loses (the evaluation uses one virtual game per pair and says so).
Intervals resample CASES with replacement (all the outcomes of a case move together) and refit.
"""

from __future__ import annotations

import math

import numpy as np

ELO_PER_UNIT = 400 / math.log(10)


def win_matrix(n_models: int, outcomes: list[tuple[int, int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(W (M, M): wins of row over column, ties half each; N (M, M): games between the two)."""
    wins = np.zeros((n_models, n_models))
    games = np.zeros((n_models, n_models))
    for i, j, o in outcomes:
        wins[i, j] += o
        wins[j, i] += 1.0 - o
        games[i, j] += 1
        games[j, i] += 1
    return wins, games


def bradley_terry(wins: np.ndarray, games: np.ndarray, prior: float = 0.0, max_iter: int = 10_000,
                  tol: float = 1e-12) -> np.ndarray:
    """Centred log strengths (M,) maximising the Bradley-Terry likelihood of ``wins``/``games``
    (plus ``prior`` virtual games per pair, half won by each). A model with no games gets 0."""
    m = len(wins)
    off = 1 - np.eye(m)
    w = wins + prior / 2 * off
    n = games + prior * off
    played = n.sum(axis=1) > 0
    p = np.ones(m)
    for _ in range(max_iter):
        denom = (n / (p[:, None] + p[None, :])).sum(axis=1)
        new = np.where(played, w.sum(axis=1) / np.where(denom > 0, denom, 1), 1.0)
        new = np.maximum(new, 1e-300)
        new /= math.exp(np.log(new[played]).mean()) if played.any() else 1.0
        if np.max(np.abs(np.log(new) - np.log(p))) < tol:
            p = new
            break
        p = new
    s = np.log(p)
    s[played] -= s[played].mean()
    s[~played] = 0.0
    return s


def leaderboard(models: list[str], case_outcomes: list[list[tuple[int, int, float]]], prior: float = 1.0,
                n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0) -> list[dict]:
    """Rows ``{model, strength, ci_low, ci_high, elo, games, wins, ties, losses}``, strongest first.
    ``case_outcomes[c]``: the (i, j, outcome of i) of case c (1 win, 0.5 tie, 0 loss)."""
    m = len(models)
    flat = [o for case in case_outcomes for o in case]
    strengths = bradley_terry(*win_matrix(m, flat), prior=prior)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_bootstrap if case_outcomes else 0):
        pick = rng.integers(0, len(case_outcomes), len(case_outcomes))
        samples.append(bradley_terry(*win_matrix(m, [o for c in pick for o in case_outcomes[c]]), prior=prior))
    alpha = (1 - confidence) / 2
    lo, hi = (np.quantile(np.array(samples), [alpha, 1 - alpha], axis=0) if samples
              else (np.full(m, np.nan), np.full(m, np.nan)))
    rows = []
    for k, name in enumerate(models):
        mine = [(o if i == k else 1 - o) for i, j, o in flat if k in (i, j)]
        rows.append({"model": name, "strength": float(strengths[k]), "ci_low": _num(lo[k]), "ci_high": _num(hi[k]),
                     "elo": 1000 + ELO_PER_UNIT * float(strengths[k]), "games": len(mine),
                     "wins": sum(o == 1.0 for o in mine), "ties": sum(o == 0.5 for o in mine),
                     "losses": sum(o == 0.0 for o in mine)})
    return sorted(rows, key=lambda r: -r["strength"])


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)
