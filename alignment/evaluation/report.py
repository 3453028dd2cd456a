"""``report.html`` of an evaluation: one self-contained page (opens from disk, no network).

Sections: models and eval sets; the clinical table per eval set with 95% intervals (and a chart of
the pooled rates), paired differences; the referee per pair of models (overall and per category:
mean scores, performance ratio, wins / ties / losses) with a chart; the Bradley-Terry leaderboard
with its chart; rubric and multi-turn sections; the cost per model. Every text that came from a
config, a data set or a model is HTML-escaped; figures are matplotlib PNGs (medalign/html.py).
"""

from __future__ import annotations

import html
from pathlib import Path

from medalign.html import figure, img, mpl_text, page, png

RATES = [("diagnosis_accuracy", "diagnosis right"), ("diagnosis_hedged", "diagnosis hedged"),
         ("department_accuracy", "department right"), ("asks_when_missing", "asks when info missing"),
         ("needless_asking", "asks needlessly"), ("red_flag_coverage", "warns of a red flag")]
e = html.escape


def fmt(x, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def ci(stat: dict, key: str = "value") -> str:
    """``value [lo, hi] (n)`` of a metric dict."""
    if stat.get(key) is None:
        return f"- (n={stat.get('n', 0)})"
    return f"{fmt(stat[key])} [{fmt(stat.get('ci_low'))}, {fmt(stat.get('ci_high'))}] (n={stat['n']})"


def table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report_html(report: dict, path: Path) -> None:
    parts = [f"<h1>medalign eval {e(report['name'])}</h1>",
             f"<p class=\"note\">seed {e(str(report['seed']))} &middot; sampling {e(str(report['sampling']))} "
             f"&middot; {fmt(report.get('wall_s'))} s</p>",
             "<h2>Models</h2>", table(["model", "checkpoint", "digest"],
                                      [[m["name"], m["checkpoint"], m["digest"][:20]] for m in report["models"]]),
             "<h2>Eval sets</h2>", table(["set", "cases", "categories", "ground truth"],
                                         [[s["name"], str(s["cases"]), str(len(s["categories"])),
                                           "yes" if s["ground_truth"] else s.get("note", "no")]
                                          for s in report["eval_sets"]])]
    parts += clinical_html(report["clinical"])
    parts += referee_html(report["referee"])
    parts += leaderboard_html(report["leaderboard"])
    for name in ("rubric", "multi_turn"):
        parts += [f"<h2>{name.replace('_', '-').capitalize()}</h2>", _section_note(report[name])]
    parts += ["<h2>Cost</h2>", table(["model", "generated", "cached", "generation s", "judge calls",
                                      "judge cache hits", "judge s"],
                                     [[m, str(c["generated"]), str(c["generation_cached"]), fmt(c["generation_wall_s"]),
                                       str(c["judge_calls"]), str(c["judge_cache_hits"]), fmt(c["judge_wall_s"])]
                                      for m, c in report["cost"].items()])]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page(f"medalign eval {report['name']}", parts), encoding="utf-8")
    tmp.replace(path)


def _section_note(section: dict) -> str:
    if not section.get("enabled"):
        return "<p class=\"note\">not run (enabled: false).</p>"
    if section.get("note"):
        return f"<p class=\"note\">{e(section['note'])}</p>"
    return f"<pre>{e(str(section.get('models')))[:20000]}</pre>"


def clinical_html(section: dict) -> list[str]:
    if not section.get("enabled"):
        return ["<h2>Clinical ground truth</h2>", "<p class=\"note\">not run (clinical: false).</p>"]
    parts = ["<h2>Clinical ground truth</h2>",
             "<p class=\"note\">No LLM: names found with the world's lexicon, asking by question marks and "
             "inquiry phrases, red flags by phrase (alignment/evaluation/clinical.py). Each rate is over the "
             "cases where it applies (n); 95% bootstrap intervals over cases.</p>"]
    for name, why in section["not_applicable"].items():
        parts.append(f"<p class=\"note\">{e(name)}: {e(why)}</p>")
    models = list(section["models"])
    scopes = ["all"] + list(next(iter(section["models"].values()))["sets"]) if models else []
    for scope in scopes:
        if scope != "all" and scope not in section["applies_to"]:
            continue
        rows = []
        for m in models:
            s = section["models"][m]["all" if scope == "all" else "sets"]
            s = s if scope == "all" else s[scope]
            rows.append([m] + [ci(s[k]) for k, _ in RATES] + [ci(s["mean_response_length"])])
        title = "all sets with ground truth" if scope == "all" else scope
        parts += [f"<h3>{e(title)}</h3>", table(["model"] + [label for _, label in RATES] + ["mean length"], rows)]
    if models and section["applies_to"]:
        parts.append(_clinical_chart(section, models))
    for pair, d in section["paired"].items():
        rows = [[k, ci(d["all"][k], "diff")] for k, _ in RATES + [("mean_response_length", "")]]
        parts += [f"<h3>Paired differences: {e(pair)} (first minus second, same cases)</h3>",
                  table(["metric", "difference [95% CI] (n)"], rows)]
    return parts


def _clinical_chart(section: dict, models: list[str]) -> str:
    fig, (ax,) = figure(1, height=3.4, width=9)
    width = 0.8 / len(models)
    for k, m in enumerate(models):
        s = section["models"][m]["all"]
        xs = [i + k * width for i in range(len(RATES))]
        vals = [s[key]["value"] or 0.0 for key, _ in RATES]
        err = [[max(v - (s[key]["ci_low"] if s[key]["ci_low"] is not None else v), 0) for v, (key, _) in zip(vals, RATES)],
               [max((s[key]["ci_high"] if s[key]["ci_high"] is not None else v) - v, 0) for v, (key, _) in zip(vals, RATES)]]
        ax.bar(xs, vals, width, yerr=err, capsize=3, label=mpl_text(m))
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(RATES))], [label for _, label in RATES], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of applicable cases")
    ax.legend(fontsize=8)
    return img(png(fig), "clinical rates per model with 95% intervals")


def referee_html(section: dict) -> list[str]:
    parts = ["<h2>Referee (HuatuoGPT's protocol)</h2>"]
    if not section.get("enabled"):
        return parts + [f"<p class=\"note\">not run: {e(section.get('reason', ''))}.</p>"]
    parts.append(f"<p class=\"note\">template {e(section['template'])}, judge {e(section['judge'])} "
                 f"({e(section['model'])} at {e(section['endpoint'])}), both orders; only ok, unflagged results "
                 f"are scores. Transcripts: {e(section['transcripts'])}.</p>")
    header = ["scope", "n", "mean A", "mean B", "ratio A/B [95% CI]", "wins", "ties", "losses", "win rate [95% CI]"]
    for pair, d in section["pairs"].items():
        rows = [_ref_row("all sets", d["overall"])]
        for set_name, s in d["sets"].items():
            rows.append(_ref_row(set_name, s["overall"]))
            rows += [_ref_row(f"  {set_name} / {cat}", t) for cat, t in s["by_category"].items()]
        run = section["runs"][pair]
        parts += [f"<h3>{e(pair)}</h3>", table(header, rows),
                  f"<p class=\"note\">excluded: {e(str(d['excluded'] or 'none'))}; judge calls this run "
                  f"{run['api_calls']}, cache hits {run['cache_hits']}, already done {run['already_done']}.</p>"]
    parts.append(_wtl_chart(section["pairs"]))
    return parts


def _ref_row(scope: str, t: dict) -> list[str]:
    ratio = f"{fmt(t['performance_ratio'])} [{fmt(t['ratio_ci'][0])}, {fmt(t['ratio_ci'][1])}]"
    rate = f"{fmt(t['win_rate'])} [{fmt(t['win_rate_ci'][0])}, {fmt(t['win_rate_ci'][1])}]"
    return [scope, str(t["n"]), fmt(t["mean_a"]), fmt(t["mean_b"]), ratio, str(t["wins"]), str(t["ties"]),
            str(t["losses"]), rate]


def _wtl_chart(pairs: dict) -> str:
    fig, (ax,) = figure(1, height=0.5 * len(pairs) + 1.4, width=8)
    names = list(pairs)
    left = [0.0] * len(names)
    for key, label in (("win_share", "A wins"), ("tie_share", "tie"), ("loss_share", "B wins")):
        vals = [pairs[p]["overall"][key]["value"] or 0.0 for p in names]
        ax.barh(range(len(names)), vals, left=left, label=label)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_yticks(range(len(names)), [mpl_text(p) for p in names])
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of judged cases")
    ax.legend(fontsize=8)
    return img(png(fig), "referee wins, ties and losses per pair")


def leaderboard_html(board: dict) -> list[str]:
    parts = ["<h2>Leaderboard (Bradley-Terry)</h2>"]
    if not board.get("enabled"):
        return parts + [f"<p class=\"note\">not run: {e(board.get('reason', ''))}.</p>"]
    rows = board["rows"]
    parts += [f"<p class=\"note\">Strengths on the log scale (0 = the average model), fitted to every pairwise "
              f"referee outcome with {fmt(board['prior_games_per_pair'])} virtual tied game(s) per pair; 95% "
              f"intervals resample cases. Elo = 1000 + 400/ln10 x strength.</p>",
              table(["model", "strength [95% CI]", "Elo", "games", "W", "T", "L"],
                    [[r["model"], f"{fmt(r['strength'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]",
                      f"{r['elo']:.0f}", str(r["games"]), str(r["wins"]), str(r["ties"]), str(r["losses"])]
                     for r in rows])]
    fig, (ax,) = figure(1, height=0.5 * len(rows) + 1.4, width=7)
    for i, r in enumerate(rows):
        lo, hi = r["ci_low"], r["ci_high"]
        err = [[r["strength"] - lo], [hi - r["strength"]]] if lo is not None and hi is not None else None
        ax.errorbar([r["strength"]], [i], xerr=err, fmt="o", capsize=4)
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(rows)), [mpl_text(r["model"]) for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("Bradley-Terry strength (log scale), 95% interval")
    return parts + [img(png(fig), "leaderboard strengths with 95% intervals")]
