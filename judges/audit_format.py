"""Text rendering of an audit summary, and reading a reference ranking for it."""

from __future__ import annotations

from pathlib import Path

from judges.tuples import read_rows


def load_reference_ranks(path: str | Path) -> dict[str, int]:
    """Response id -> reference rank from a file with ``prompt_id``, ``ranks`` and optional
    ``response_ids`` (default ``<prompt_id>#<i>``), e.g. the data stage's ranked/ split."""
    out: dict[str, int] = {}
    for n, row in read_rows(path):
        ranks = row.get("ranks")
        if not isinstance(row.get("prompt_id"), str) or not isinstance(ranks, list):
            raise ValueError(f"{path}:{n}: fields 'prompt_id' and 'ranks' are required")
        ids = row.get("response_ids") or [f"{row['prompt_id']}#{i}" for i in range(len(ranks))]
        if len(ids) != len(ranks):
            raise ValueError(f"{path}:{n}: 'response_ids' and 'ranks' differ in length")
        out.update(zip(ids, (int(r) for r in ranks)))
    return out


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _histogram(hist: dict[str, int], width: int = 40) -> list[str]:
    if not hist:
        return ["    (no ok scores)"]
    top = max(hist.values())
    return [f"    {k:>5} | {'#' * max(1, round(width * v / top)):<{width}} {v}" for k, v in hist.items()]


def format_summary(summary: dict) -> str:
    lines = [f"transcript {summary['transcript']}: {summary['rows']} rows"]
    for name, s in summary["judges"].items():
        lines += [
            f"\njudge {name}",
            f"  calls {s['calls']}  rows {s['rows']}  cache hits {s['cache_hits']}  "
            f"judgments {s['judgments']}  superseded rows {s['superseded_rows']}  "
            f"retried calls {s['retried_calls']}",
            "  statuses " + ", ".join(f"{k} {v}" for k, v in sorted(s["status_counts"].items())),
            f"  swap consistency {_fmt(s['swap_consistency'])} over {s['swap_pairs']} pairs",
            f"  first-position win rate {_fmt(s['first_position_win_rate'])} "
            f"(ties {_fmt(s['tie_rate'])}) over {s['pairwise_rows']} pairwise rows",
            f"  score vs response length: Spearman {_fmt(s['length_spearman'])} "
            f"over {s['length_points']} scores",
            f"  latency p50 {_fmt(s['latency_p50_s'])} s  p95 {_fmt(s['latency_p95_s'])} s  "
            f"tokens {s['tokens']}  cost {_fmt(s['cost'], 4)}",
        ]
        if "reference_agreement" in s:
            lines.append(f"  agreement with the reference ranking {_fmt(s['reference_agreement'])} "
                         f"over {s['reference_pairs']} response pairs")
        lines.append("  score histogram")
        lines += _histogram(s["score_histogram"])
    inter = summary.get("inter_judge")
    if inter:
        lines.append("\ninter-judge agreement on pair verdicts (95% bootstrap intervals)")
        for pair, k in inter["kappa"].items():
            lines.append(f"  Cohen's kappa {pair}: {_fmt(k['kappa'])} "
                         f"[{_fmt(k['ci95'][0])}, {_fmt(k['ci95'][1])}] over {k['units']} pairs")
        a = inter.get("alpha_ordinal")
        if a:
            lines.append(f"  Krippendorff's alpha (ordinal): {_fmt(a['alpha'])} "
                         f"[{_fmt(a['ci95'][0])}, {_fmt(a['ci95'][1])}] over {a['units']} pairs")
    return "\n".join(lines)
