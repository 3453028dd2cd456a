"""``report.html`` of an evaluation: one self-contained page (opens from disk, no network).

Sections: models and eval sets; the clinical table per eval set with 95% intervals (and a chart of
the pooled rates), paired differences; the referee per pair of models (overall and per category:
mean scores, performance ratio, wins / ties / losses) with a chart; the Bradley-Terry leaderboard
with its chart; the rubric scores per model (overall, by axis, by theme, per set; paired
differences; a chart); the multi-turn conversations (ground truth per model and set, paired
differences, the referee on whole conversations); the cost per model and the time of each part. Every text that came from a
config, a data set or a model is HTML-escaped; figures are matplotlib PNGs (medalign/html.py).
"""

from __future__ import annotations

import html
from pathlib import Path

from medalign.html import figure, img, mpl_text, page, png

RATES = [("diagnosis_accuracy", "diagnosis right"), ("diagnosis_hedged", "diagnosis hedged"),
         ("department_accuracy", "department right"), ("asks_when_missing", "asks when info missing"),
         ("needless_asking", "asks needlessly"), ("red_flag_coverage", "warns of a red flag"),
         ("structure_rate", "organised (a list)")]
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
    parts += rubric_html(report["rubric"])
    parts += multi_turn_html(report["multi_turn"])
    parts += cost_html(report["cost"], report.get("timings") or {})
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page(f"medalign eval {report['name']}", parts), encoding="utf-8")
    tmp.replace(path)


def _section_note(section: dict, switch: str) -> str | None:
    """Why a section has nothing to show, or None when it has."""
    if not section.get("enabled"):
        return f"<p class=\"note\">not run ({e(switch)}.enabled: false).</p>"
    if section.get("note"):
        return f"<p class=\"note\">{e(section['note'])}</p>"
    return None


def cost_html(cost: dict, timings: dict) -> list[str]:
    columns = [("generated", "generated"), ("generation_cached", "cached"), ("generation_wall_s", "generation s"),
               ("judge_calls", "referee calls"), ("judge_cache_hits", "referee cache hits"),
               ("judge_already_done", "referee already done"), ("judge_wall_s", "referee s"),
               ("doctor_generated", "doctor turns generated"), ("patient_calls", "patient calls"),
               ("patient_already_done", "patient already done"), ("grader_calls", "grader calls"),
               ("grader_already_done", "grader already done")]
    shown = [(k, label) for k, label in columns if any(k in c for c in cost.values())]
    rows = [[m] + [fmt(c.get(k)) for k, _ in shown] for m, c in cost.items()]
    parts = ["<h2>Cost</h2>", "<p class=\"note\">Calls made in this run; \"already done\" calls were found ok in "
             "the transcript (no API call). Referee calls count for both models of a pair.</p>",
             table(["model"] + [label for _, label in shown], rows)]
    if timings:
        parts.append(table(["part", "wall s"], [[k, fmt(v)] for k, v in timings.items()]))
    return parts


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


AXES_NOTE = ("Score per example: points achieved / positive points possible, clipped to [0, 1]; an example with "
             "a grader call that is not ok is incomplete (counted, never scored). 95% bootstrap intervals over "
             "examples.")


def _score(stat: dict) -> str:
    return ci({"value": stat.get("score"), **{k: stat.get(k) for k in ("ci_low", "ci_high", "n")}})


def rubric_html(section: dict) -> list[str]:
    parts = ["<h2>Rubric grading (HealthBench's format)</h2>"]
    note = _section_note(section, "rubric")
    if note:
        return parts + [note]
    models = section["models"]
    axes = sorted({a for s in models.values() for a in s["all"]["by_axis"]})
    themes = sorted({t for s in models.values() for t in s["all"]["by_theme"]})
    parts.append(f"<p class=\"note\">grader {e(section['grader']['model'])} at {e(section['grader']['endpoint'])}, "
                 f"{section['cases']} cases of {e(', '.join(section['sets']))}. {e(AXES_NOTE)}</p>")
    rows = [[m, _score(s["all"]["overall"]), fmt(s["all"]["healthbench_mean"]),
             f"{s['all']['scored']} / {s['all']['incomplete']}"] + [_score(s["all"]["by_axis"].get(a, {})) for a in axes]
            for m, s in models.items()]
    parts += ["<h3>Overall and by axis</h3>",
              table(["model", "score [95% CI] (n)", "HealthBench mean", "scored / incomplete"] + axes, rows)]
    if themes:
        parts += ["<h3>By theme</h3>", table(["model"] + themes, [[m] + [_score(s["all"]["by_theme"].get(t, {}))
                                                                       for t in themes] for m, s in models.items()])]
    parts += ["<h3>Per eval set</h3>", table(["model"] + section["sets"], [
        [m] + [_score(s["sets"][n]["overall"]) for n in section["sets"]] for m, s in models.items()])]
    if section["paired"]:
        parts += ["<h3>Paired differences (first minus second, examples scored for both)</h3>",
                  table(["pair", "score difference [95% CI] (n)"],
                        [[p, ci(d, "diff")] for p, d in section["paired"].items()])]
    fig, (ax,) = figure(1, height=0.5 * len(models) + 1.4, width=7)
    for i, (m, s) in enumerate(models.items()):
        o = s["all"]["overall"]
        if o["score"] is not None:
            ax.errorbar([o["score"]], [i], xerr=[[o["score"] - o["ci_low"]], [o["ci_high"] - o["score"]]],
                        fmt="o", capsize=4)
    ax.set_yticks(range(len(models)), [mpl_text(m) for m in models])
    ax.set_xlim(0, 1)
    ax.set_xlabel("rubric score, 95% interval")
    return parts + [img(png(fig), "rubric score per model with 95% intervals")]


MT_RATES = [("diagnosis_accuracy", "diagnosis right"), ("diagnosis_hedged", "hedged"),
            ("diagnosed_rate", "diagnosed"), ("department_accuracy", "department right"),
            ("asked_when_missing", "asked when info missing"), ("elicited_when_missing", "got the missing info"),
            ("needless_asking", "asked needlessly"), ("mean_turns", "doctor turns")]


def multi_turn_html(section: dict) -> list[str]:
    parts = ["<h2>Multi-turn with a simulated patient</h2>"]
    note = _section_note(section, "multi_turn")
    if note:
        return parts + [note]
    parts.append(f"<p class=\"note\">patient {e(section['patient']['model'])} at "
                 f"{e(section['patient']['endpoint'])}; {section['cases']} cases with a case card of "
                 f"{e(', '.join(section['sets']))}; at most {section['max_turns']} doctor turns. Scored by ground truth "
                 "without any LLM (conversations that ended on their own; failed patient calls are counted, never "
                 "scored); 95% bootstrap intervals over conversations.</p>")
    header = ["model", "scored / played"] + [label for _, label in MT_RATES] + ["ended"]
    for scope in ["all"] + section["sets"]:
        rows = []
        for m, s in section["models"].items():
            d = s["all"] if scope == "all" else s["sets"][scope]
            rows.append([m, f"{d['scored']} / {d['conversations']}"] + [ci(d[k]) for k, _ in MT_RATES]
                        + [", ".join(f"{k} {v}" for k, v in sorted(d["status_counts"].items()))])
        parts += [f"<h3>{e('every set' if scope == 'all' else scope)}</h3>", table(header, rows)]
    for pair, d in section["paired"].items():
        parts += [f"<h3>Paired differences: {e(pair)} (first minus second, same cases)</h3>",
                  table(["metric", "difference [95% CI] (n)"], [[label, ci(d[k], "diff")] for k, label in MT_RATES])]
    ref = section["referee"]
    parts.append("<h3>Referee on whole conversations</h3>")
    if not ref.get("enabled"):
        return parts + [f"<p class=\"note\">not run: {e(ref.get('reason', ''))}.</p>"]
    parts.append(f"<p class=\"note\">template {e(ref['template'])} ({e(ref['model'])} at {e(ref['endpoint'])}), "
                 f"both orders, per department. Transcripts: {e(ref['transcripts'])}.</p>")
    head = ["scope", "n", "mean A", "mean B", "ratio A/B [95% CI]", "wins", "ties", "losses", "win rate [95% CI]"]
    for pair, d in ref["pairs"].items():
        rows = [_ref_row("all sets", d["overall"])]
        for set_name, s in d["sets"].items():
            rows += [_ref_row(f"  {set_name} / {cat}", t) for cat, t in s["by_category"].items()]
        parts += [f"<h4>{e(pair)}</h4>", table(head, rows),
                  f"<p class=\"note\">excluded: {e(str(d['excluded'] or 'none'))}.</p>"]
    return parts
