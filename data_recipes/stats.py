"""``medalign data stats DIR``: what a build made, from its report and its Parquet files.

Counts per output and split, per source and origin (requested vs actual), language mix, PII
spans scrubbed, duplicates and quarantine; length histograms (characters per row, one outline
per source) in one PNG. A panel's x axis ends at the output's 99th percentile and says so, with
the number of longer rows counted in its last bin (or says it is not clipped when no row is
longer). Files are read one row group at a time, so a large output does not have to fit in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from data_recipes.writers import SPLITS
from medalign.config import ConfigError

_LENGTH_BINS = 40
CLIP_PERCENTILE = 99


def _row_lengths(kind: str, table) -> np.ndarray:
    """Characters per row: all message contents (+ reference/chosen/responses/text)."""
    columns = table.to_pydict()
    n = table.num_rows
    lengths = np.zeros(n, dtype=np.int64)
    for name in ("messages",):
        if name in columns:
            lengths += np.array([sum(len(m["content"]) for m in msgs or []) for msgs in columns[name]], dtype=np.int64)
    for name in ("reference", "chosen", "rejected", "text"):
        if name in columns:
            lengths += np.array([len(v or "") for v in columns[name]], dtype=np.int64)
    if "responses" in columns:
        lengths += np.array([sum(map(len, r or [])) for r in columns["responses"]], dtype=np.int64)
    return lengths


def _read_report(folder: Path) -> dict:
    """The build report of ``folder``; ConfigError (one line) when it is not a build."""
    report_path = folder / "build_report.json"
    if not report_path.is_file():
        raise ConfigError([f"{folder}: not a data build (no build_report.json); give a folder written by "
                           f"`medalign data build` or a data stage's directory"])
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError([f"{report_path}: not a readable build report ({e})"]) from None
    if not isinstance(report, dict) or not {"recipe", "outputs", "sources"} <= set(report):
        raise ConfigError([f"{report_path}: not a build report (expected recipe, outputs and sources)"])
    return report


def _output_lengths(folder: Path, kind: str) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """Rows per split and characters per row per source, of one output."""
    import pyarrow.parquet as pq

    per_split, by_source = {}, {}
    for split in SPLITS:
        path = folder / kind / f"{split}.parquet"
        if not path.is_file():
            continue
        parquet = pq.ParquetFile(path)
        per_split[split] = parquet.metadata.num_rows
        for g in range(parquet.num_row_groups):
            table = parquet.read_row_group(g)
            lengths, sources = _row_lengths(kind, table), np.array(table.column("source").to_pylist())
            for source in np.unique(sources):
                by_source.setdefault(str(source), []).append(lengths[sources == source])
    return per_split, {s: np.concatenate(parts) for s, parts in sorted(by_source.items())}


def dataset_stats(folder: str | Path, plots: str | Path | None = None, plot: bool = True) -> dict:
    """Summary of a built folder; writes ``lengths.png`` (one panel per output, one outline per
    source) into ``plots`` (default DIR/stats)."""
    folder = Path(folder)
    report = _read_report(folder)
    summary: dict = {"recipe": report["recipe"], "outputs": {}, "sources": {}, "plots": []}
    histograms = {}
    for kind, section in report["outputs"].items():
        per_split, by_source = _output_lengths(folder, kind)
        every = np.concatenate(list(by_source.values())) if by_source else np.zeros(0, dtype=np.int64)
        summary["outputs"][kind] = {
            "rows": per_split, "by_source": section["by_source"], "by_origin": section["by_origin"],
            "chars_per_row": _describe(every),
            "chars_per_row_by_source": {s: _describe(x) for s, x in by_source.items()},
        }
        if len(every):
            histograms[kind] = by_source
    if histograms and plot:
        path, clips = _histograms(histograms, Path(plots) if plots else folder / "stats")
        summary["plots"].append(str(path))
        for kind, clip in clips.items():
            summary["outputs"][kind]["length_plot"] = clip
    for name, src in report["sources"].items():
        summary["sources"][name] = {k: src.get(k) for k in ("origin", "records_read", "quarantined", "kept",
                                                            "exact_duplicates", "near_duplicates",
                                                            "languages", "pii_spans")}
    summary["quarantine"] = report.get("quarantine", {})
    summary["dedup"] = {k: report.get("dedup", {}).get(k) for k in ("exact", "near", "index_bytes_per_record")}
    summary["warnings"] = report.get("warnings", [])
    return summary


def length_clip(lengths: np.ndarray) -> dict:
    """Where a length histogram ends: the 99th percentile, and how many rows are longer (their
    lengths are counted in the last bin); ``clipped`` False when no row is longer."""
    end = max(int(np.percentile(lengths, CLIP_PERCENTILE)), 1)
    above = int((lengths > end).sum())
    caption = (f"clipped at the {CLIP_PERCENTILE}th percentile ({end} chars): {above} longer rows in the last bin"
               if above else f"not clipped (longest row: {int(lengths.max())} chars)")
    return {"clipped": bool(above), "end": end if above else max(int(lengths.max()), 1),
            "rows_above": above, "caption": caption}


def _describe(x: np.ndarray) -> dict:
    if not len(x):
        return {"n": 0}
    return {"n": int(len(x)), "mean": round(float(x.mean()), 1), "p50": int(np.percentile(x, 50)),
            "p95": int(np.percentile(x, 95)), "max": int(x.max())}


def _histograms(per_output: dict[str, dict[str, np.ndarray]], plots: Path) -> tuple[Path, dict[str, dict]]:
    """One panel per output: characters per row, one outline per source, the x axis clipped at
    the 99th percentile (said in the panel). Returns the PNG path and each panel's clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots.mkdir(parents=True, exist_ok=True)
    clips = {}
    fig, axes = plt.subplots(len(per_output), 1, figsize=(7, 2.8 * len(per_output)), squeeze=False)
    for ax, (kind, by_source) in zip(axes[:, 0], per_output.items()):
        clip = clips[kind] = length_clip(np.concatenate(list(by_source.values())))
        bins = np.linspace(0, clip["end"], _LENGTH_BINS + 1)
        for source, x in by_source.items():
            counts, _ = np.histogram(np.minimum(x, bins[-1]), bins=bins)
            ax.stairs(counts, bins, label=f"{source} ({len(x)})")
        ax.set_title(f"{kind}: characters per row, by source", fontsize=9)
        ax.set_xlabel(f"characters per row - {clip['caption']}", fontsize=8)
        ax.set_ylabel("rows", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = plots / "lengths.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path, clips


def print_stats(summary: dict) -> None:
    """Tables of a :func:`dataset_stats` summary (rich)."""
    from rich.console import Console
    from rich.table import Table

    import sys

    console = Console(width=None if sys.stdout.isatty() else 200)   # no folding when piped
    console.print(f"recipe [bold]{summary['recipe']['name']}[/] (hash {summary['recipe']['hash']})")
    table = Table("output", "train", "validation", "test", "chars/row mean", "p95")
    for kind, s in summary["outputs"].items():
        rows, chars = s["rows"], s["chars_per_row"]
        table.add_row(kind, *(str(rows.get(sp, 0)) for sp in SPLITS),
                      str(chars.get("mean", "-")), str(chars.get("p95", "-")))
    console.print(table)
    table = Table("output", "group", "name", "requested", "actual", "req. share", "actual share")
    for kind, s in summary["outputs"].items():
        for group in ("by_origin", "by_source"):
            for name, g in s[group].items():
                table.add_row(kind, group[3:], name, str(g["requested"]), str(g["actual"]),
                              f"{g['requested_fraction']:.3f}", f"{g['actual_fraction']:.3f}")
    console.print(table)
    table = Table("source", "origin", "read", "quarantined", "kept", "exact dup", "near dup", "languages", "PII spans")
    for name, s in summary["sources"].items():
        table.add_row(name, s["origin"], str(s["records_read"]), str(s["quarantined"]), str(s["kept"]),
                      str(s["exact_duplicates"]), str(s["near_duplicates"]),
                      json.dumps(s["languages"], ensure_ascii=False), json.dumps(s["pii_spans"]))
    console.print(table)
    for path in summary["plots"]:
        console.print(f"histogram: {path}")
    for kind, s in summary["outputs"].items():
        if "length_plot" in s:
            console.print(f"  {kind}: {s['length_plot']['caption']}")
    for warning in summary.get("warnings", []):
        console.print(f"warning: {warning}")
