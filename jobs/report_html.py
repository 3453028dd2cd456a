"""``report.html``: the job report as one self-contained page (opens from disk, needs no network).

Sections: the summary table (every stage's status, wall time and key metrics), the headline
figures, the training curves of each training stage, reward and KL per PPO step, the judge
win rates with their 95% intervals, and the ``figures`` rows of stages that report them
(transfer_eval, bias: each figure per model with its 95% interval). Figures are matplotlib PNGs
embedded as base64 ``data:`` URIs.

Where the curves come from: the TensorBoard events each training stage writes under
``<stage dir>/tensorboard/`` (:mod:`alignment.tracking`), and for ``ppo`` its ``metrics.jsonl``
(one row per step, written whatever ``tracking`` says). A stage without them says why instead of
showing a figure. Every text that came from a config, a data set or a model (job and stage names,
errors, string metrics) is HTML-escaped.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from jobs.report import _TABLE_METRICS, _fmt
from medalign.html import CSS as _CSS
from medalign.html import figure as _figure
from medalign.html import img as _img
from medalign.html import mpl_text as _mpl
from medalign.html import png as _png

# stage kind -> panels (title, tags); a tag is a TensorBoard scalar tag, or for ppo a metrics.jsonl key
PANELS: dict[str, list[tuple[str, list[str]]]] = {
    "pretrain": [("loss", ["train/loss", "eval/loss"])],
    "sft": [("loss", ["train/loss", "eval/loss"])],
    "reward_model": [("loss", ["train/loss"]), ("pairwise accuracy", ["train/accuracy", "eval/heldout_accuracy"])],
    "dpo": [("loss", ["train/loss", "eval/loss"]),
            ("implicit reward accuracy", ["train/rewards/accuracies", "eval/rewards/accuracies"])],
    "rsft": [("score of the samples per iteration", ["rsft/mean_score", "rsft/best_of_k_mean"]),
             ("fine-tuning loss per iteration", ["train/loss"])],
    "online_rl": [("reward", ["train/reward"]), ("KL to the reference", ["train/kl"]), ("loss", ["train/loss"])],
    "ppo": [("reward (reward-model score) per step", ["reward/score_raw"]),
            ("KL to the reference (nats per response) per step", ["kl/mean"]),
            ("losses", ["policy/loss", "value/loss"])],
}

def write_report_html(report: dict, path: Path) -> None:
    """Render ``report`` (the dict written to report.json) as a self-contained HTML page at ``path``."""
    e = html.escape
    parts = [f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>medalign job {e(report['job'])}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>medalign job {e(report['job'])}: {e(report['status'])}</h1>",
             f"<p>{e(str(report['source']))} &middot; seed {e(str(report['seed']))} &middot; started "
             f"{e(report['started_at'])} &middot; {report['wall_s']:.1f} s</p>"]
    if report.get("partial"):
        parts.append("<p class=\"note\">A partial run (--until / --only): only the stages below were brought "
                     "up to date. The report of the whole job, when there is one, is report.html.</p>")
    parts += ["<h2>Stages</h2>", _summary_table(report["stages"])]
    if report["headline"]:
        rows = "".join(f"<tr><td>{e(k)}</td><td>{e(_fmt(v))}</td></tr>" for k, v in report["headline"].items()
                       if not isinstance(v, dict))
        parts += ["<h2>Headline</h2>", f"<table><tr><th>figure</th><th>value</th></tr>{rows}</table>"]
    parts += ["<h2>Training curves</h2>", *_curve_sections(report["stages"])]
    parts += _evaluation_section(report["stages"])
    parts += _win_rate_section(report["stages"])
    parts += _figures_section(report["stages"])
    parts.append("</body></html>\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(path)


def _summary_table(stages: dict) -> str:
    e = html.escape
    rows = ["<tr><th>stage</th><th>kind</th><th>status</th><th>wall s</th><th>metrics</th></tr>"]
    for name, s in stages.items():
        keys = _TABLE_METRICS.get(s["kind"], ())
        metrics = ", ".join(f"{k}={_fmt(s['metrics'][k])}" for k in keys if k in s["metrics"])
        wall = f"{s['wall_s']:.1f}" if s["wall_s"] is not None else "-"
        cls = "" if s["status"] in ("ran", "reused") else " class=\"failed\""
        rows.append(f"<tr{cls}><td>{e(name)}</td><td>{e(s['kind'])}</td><td>{e(s['status'])}</td><td>{wall}</td>"
                    f"<td>{e(metrics or (s['error'] or ''))}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def stage_curves(kind: str, stage_dir: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``{run: {tag: [(step, value), ...]}}`` of one stage: ppo's metrics.jsonl, else its TensorBoard events."""
    if kind == "ppo":
        rows = [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
                if line.strip()] if (stage_dir / "metrics.jsonl").is_file() else []
        tags = {t for _, tags in PANELS["ppo"] for t in tags}
        return {".": {t: [(r["step"], r[t]) for r in rows if r.get(t) is not None] for t in tags}} if rows else {}
    from alignment.tracking import TENSORBOARD_DIR, read_scalars

    return read_scalars(stage_dir / TENSORBOARD_DIR)


def _curve_sections(stages: dict) -> list[str]:
    e = html.escape
    parts = []
    for name, s in stages.items():
        if s["kind"] not in PANELS or s["status"] not in ("ran", "reused") or not s["dir"]:
            continue
        parts.append(f"<h3>{e(name)} ({e(s['kind'])})</h3>")
        try:
            curves = stage_curves(s["kind"], Path(s["dir"]))
        except Exception as err:  # noqa: BLE001 - e.g. event files cut short by a kill: say so, keep the report
            parts.append(f"<p class=\"note\">curves could not be read: {e(type(err).__name__)}: {e(str(err))}</p>")
            continue
        png = _panels_png(name, PANELS[s["kind"]], curves)
        parts.append(_img(png, f"training curves of {name}") if png else
                     "<p class=\"note\">no curves: no TensorBoard events or metrics in the stage directory "
                     "(tracking.tensorboard off?)</p>")
    return parts or ["<p class=\"note\">no training stage in this run.</p>"]


def _panels_png(name: str, panels: list[tuple[str, list[str]]], curves: dict) -> bytes | None:
    """One row of panels; each draws every run's series of its tags. None when nothing to draw."""
    drawn = [(title, [(run, tag, pts) for run, tags in sorted(curves.items()) for tag in wanted
                      if (pts := tags.get(tag))]) for title, wanted in panels]
    drawn = [(title, series) for title, series in drawn if series]
    if not drawn:
        return None
    fig, axes = _figure(len(drawn))
    for ax, (title, series) in zip(axes, drawn):
        for run, tag, pts in series:
            label = tag if run == "." else f"{run}: {tag}"
            steps, values = zip(*pts)
            ax.plot(steps, values, marker="o" if len(pts) < 30 else None, markersize=3, label=_mpl(label))
        ax.set_title(_mpl(title), fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(_mpl(name), fontsize=11)
    return _png(fig)


def _win_rate_section(stages: dict) -> list[str]:
    """Judge win rate of each eval stage with its 95% bootstrap interval (0.5 = no better than the baseline)."""
    e = html.escape
    rows = [(name, s["metrics"]["win_rate"], s["metrics"].get("win_rate_ci"), s["metrics"].get("judged_ok"))
            for name, s in stages.items()
            if s["kind"] == "eval" and s["status"] in ("ran", "reused") and s["metrics"].get("win_rate") is not None]
    if not rows:
        return []
    fig, (ax,) = _figure(1, height=0.6 * len(rows) + 1.4)
    for i, (name, rate, ci, _) in enumerate(rows):
        err = [[rate - ci[0]], [ci[1] - rate]] if ci and None not in ci else None
        ax.errorbar([rate], [i], xerr=err, fmt="o", capsize=4)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(rows)), [_mpl(r[0]) for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)                    # first stage on top
    ax.set_xlim(0, 1)
    ax.set_xlabel("judge win rate vs the baseline (ties 0.5), 95% interval")
    table = "".join(f"<tr><td>{e(n)}</td><td>{e(_fmt(r))}</td><td>{e(_fmt(ci) if ci else '-')}</td>"
                    f"<td>{e(_fmt(k))}</td></tr>" for n, r, ci, k in rows)
    return ["<h2>Win rates</h2>", _img(_png(fig), "judge win rates with 95% intervals"),
            f"<table><tr><th>eval stage</th><th>win rate</th><th>95% interval</th><th>judged prompts</th></tr>"
            f"{table}</table>"]


def _evaluation_section(stages: dict) -> list[str]:
    """Each eval stage's referee table per eval set and category (policy vs baseline), and a
    link to its full evaluation report (clinical tables with intervals, leaderboard)."""
    e = html.escape
    parts = []
    for name, s in stages.items():
        m = s["metrics"] if s["kind"] == "eval" and s["status"] in ("ran", "reused") else {}
        if not m.get("referee_by_category"):
            continue
        rows = "".join(f"<tr><td>{e(set_name)}</td><td>{e(cat)}</td><td>{t['n']}</td><td>{e(_fmt(t['mean_policy']))}</td>"
                       f"<td>{e(_fmt(t['mean_baseline']))}</td><td>{e(_fmt(t['performance_ratio']))}</td></tr>"
                       for set_name, cats in m["referee_by_category"].items() for cat, t in cats.items())
        link = Path(s["dir"]) / "evaluation" / "report.html"
        parts += [f"<h2>Evaluation on the eval sets ({e(name)})</h2>",
                  f"<p>Referee (HuatuoGPT's protocol), policy vs baseline: performance ratio "
                  f"{e(_fmt(m.get('referee_performance_ratio')))}, win rate {e(_fmt(m.get('referee_win_rate')))} "
                  f"{e(_fmt(m.get('referee_win_rate_ci')))}. Clinical ground truth over "
                  f"{e(', '.join(m.get('clinical_eval_sets') or []))}: see the headline. Full report: "
                  f"<a href=\"{e(link.as_uri() if link.is_absolute() else str(link))}\">{e(str(link))}</a></p>",
                  "<table><tr><th>eval set</th><th>category</th><th>n</th><th>mean policy</th>"
                  f"<th>mean baseline</th><th>ratio</th></tr>{rows}</table>"]
    return parts


def _figures_section(stages: dict) -> list[str]:
    """The ``figures`` rows a stage reports (transfer_eval, bias): figure, model, value, 95% interval, n."""
    e = html.escape
    parts = []
    for name, s in stages.items():
        rows = s["metrics"].get("figures") if s["status"] in ("ran", "reused") else None
        if not isinstance(rows, list) or not rows:
            continue
        body = "".join(f"<tr><td>{e(str(r.get('figure')))}</td><td>{e(str(r.get('model')))}</td>"
                       f"<td>{e(_fmt(r.get('value')))}</td><td>{e(_fmt(r.get('ci')))}</td>"
                       f"<td>{e(_fmt(r.get('n')))}</td></tr>" for r in rows if isinstance(r, dict))
        parts += [f"<h3>{e(name)} ({e(s['kind'])})</h3>",
                  "<table><tr><th>figure</th><th>model</th><th>value</th><th>95% interval</th><th>n</th></tr>"
                  f"{body}</table>"]
    return ["<h2>Figures with 95% intervals</h2>", *parts] if parts else []
