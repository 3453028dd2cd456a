"""Text rendering of an audit summary and of comparisons; reading a reference ranking."""

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


def _flag_line(s: dict) -> str:
    flags = ", ".join(f"{k} {v}" for k, v in s["flags"].items()) or "none"
    line = f"  flags: {flags} ({s['flagged_judgments']} flagged judgments)"
    if s["rows_without_flags"]:
        line += (f"; {s['rows_without_flags']} judgments predate flags (parser version 1): "
                 "their flags are not known")
    return line


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
            f"  half-judged pairs {s['half_judged_pairs']} of {s['pairs']}",
            _flag_line(s),
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


# --------------------------------------------------------------------------------------------
# Comparisons (medalign audit list / show)
# --------------------------------------------------------------------------------------------

def _scores(row: dict) -> str:
    sc = row.get("scores")
    if not sc:
        return "-"
    return "/".join(f"{sc[k]:g}" for k in ("A", "B") if k in sc)


def comparison_line(c) -> str:
    """One line of ``audit list`` for a :class:`judges.comparisons.PairView`."""
    orders = "  ".join(f"{r.get('order')}:{r.get('status')} {_scores(r)}" for r in c.rows)
    mark = {True: "  DISAGREE", False: "", None: ""}[c.disagree]
    gap = f"  gap {c.gap:+.2f}" if c.gap is not None else ""
    flags = f"  flags {','.join(c.flags)}" if c.flags else ""
    ident = c.pair_id or c.rows[0]["judgment_id"][:16]
    return (f"{ident}  {c.judge:<10} {c.prompt_id:<12} {' vs '.join(c.sample_ids)}  "
            f"{orders}{gap}{mark}{flags}")


def _marked(text: str, span, tty: bool) -> str:
    if not span:
        return text
    a, b = span
    left, right = ("\x1b[7m", "\x1b[0m") if tty else ("«", "»")
    return text[:a] + left + text[a:b] + right + text[b:]


def _prompt_text(row: dict) -> list[str]:
    out = []
    for m in row.get("messages") or []:
        out += [f"  [{m.get('role')}]", *("    " + line for line in (m.get("content") or "").splitlines())]
    return out


def format_comparison(c, produced: list[dict] | None, with_prompt: bool = True,
                      tty: bool = False) -> str:
    """Both orders of a comparison: prompt, raw replies with the statement read marked, scores,
    flags, and the reward pairs whose lineage names one of its judgments."""
    first = c.rows[0]
    lines = [f"comparison {c.pair_id or first['judgment_id']}  judge {c.judge}  prompt "
             f"{c.prompt_id}  template {first.get('template_id')}  samples "
             f"{' vs '.join(c.sample_ids)}"]
    if with_prompt:
        lines += [f"rendered prompt (order {first.get('order')}):", *_prompt_text(first)]
    for r in c.rows:
        pos = r.get("positions") or {}
        lines += ["", f"--- order {r.get('order')}: A = {pos.get('A')}, B = {pos.get('B', '-')}  "
                      f"status {r.get('status')}  scores {_scores(r)}  judgment {r['judgment_id']}"]
        if r.get("flags"):
            lines.append("    flags: " + "; ".join(
                f"{d['flag']} ({d.get('slot')}: {d.get('match')!r})" for d in r.get("flag_details") or []))
        if r.get("error"):
            lines.append(f"    error: {r['error']}")
        lines += ["    " + x for x in _marked(r.get("completion") or "(no completion)",
                                              r.get("span"), tty).splitlines()]
    verdict = {True: "the verdict flips with the order", False: "same verdict in both orders",
               None: "no verdict in both orders"}[c.disagree]
    lines += ["", f"{verdict}; mean gap {_fmt(c.gap, 2)}"]
    lines += _produced_lines(c, produced)
    return "\n".join(lines)


def _produced_lines(c, produced: list[dict] | None) -> list[str]:
    if produced is None:
        return ["pairs produced: no pairs.parquet beside the transcript"]
    if produced and "judgment_ids" not in produced[0]:
        return ["pairs produced: pairs.parquet has no judgment_ids (written before lineage)"]
    ids = {r["judgment_id"] for r in c.rows}
    mine = [p for p in produced if ids & set(p.get("judgment_ids") or [])]
    if not mine:
        return ["pairs produced: none (not reward data, or not scored)"]
    return ["pairs produced:"] + [f"  chosen {p['chosen_id']}  rejected {p['rejected_id']}  "
                                  f"margin {_fmt(p.get('margin'), 2)}" for p in mine]
