"""``medalign data stats DIR``: what a build made, from its report and its Parquet files.

Counts per output and split, per source and origin (requested vs actual), language mix, PII
spans scrubbed, duplicates and quarantine; length histograms (characters per row) in one PNG.
Files are read one row group at a time, so a large output does not have to fit in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from data_recipes.writers import SPLITS

_LENGTH_BINS = 40


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


def dataset_stats(folder: str | Path, plots: str | Path | None = None, plot: bool = True) -> dict:
    """Summary of a built folder; writes ``lengths.png`` (one panel per output) into ``plots``
    (default DIR/stats)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    report_path = folder / "build_report.json"
    if not report_path.is_file():
        raise FileNotFoundError(f"{report_path} not found: is {folder} a folder written by `medalign data build`?")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    summary: dict = {"recipe": report["recipe"], "outputs": {}, "sources": {}, "plots": []}
    histograms = {}
    for kind, section in report["outputs"].items():
        per_split, lengths = {}, {}
        for split in SPLITS:
            path = folder / kind / f"{split}.parquet"
            if not path.is_file():
                continue
            parquet = pq.ParquetFile(path)
            per_split[split] = parquet.metadata.num_rows
            parts = [_row_lengths(kind, parquet.read_row_group(g)) for g in range(parquet.num_row_groups)]
            lengths[split] = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        every = np.concatenate(list(lengths.values())) if lengths else np.zeros(0)
        summary["outputs"][kind] = {
            "rows": per_split, "by_source": section["by_source"], "by_origin": section["by_origin"],
            "chars_per_row": _describe(every),
        }
        if len(every):
            histograms[kind] = lengths
    if histograms and plot:
        summary["plots"].append(str(_histograms(histograms, Path(plots) if plots else folder / "stats")))
    for name, src in report["sources"].items():
        summary["sources"][name] = {k: src[k] for k in ("origin", "records_read", "quarantined", "kept",
                                                        "exact_duplicates", "near_duplicates",
                                                        "languages", "pii_spans")}
    summary["quarantine"] = report["quarantine"]
    summary["dedup"] = {k: report["dedup"][k] for k in ("exact", "near", "index_bytes_per_record")}
    return summary


def _describe(x: np.ndarray) -> dict:
    if not len(x):
        return {"n": 0}
    return {"n": int(len(x)), "mean": round(float(x.mean()), 1), "p50": int(np.percentile(x, 50)),
            "p95": int(np.percentile(x, 95)), "max": int(x.max())}


def _histograms(per_output: dict[str, dict[str, np.ndarray]], plots: Path) -> Path:
    """One panel per output: characters per row, one outline per split (clipped at p99)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(per_output), 1, figsize=(6, 2.4 * len(per_output)), squeeze=False)
    for ax, (kind, lengths) in zip(axes[:, 0], per_output.items()):
        every = np.concatenate(list(lengths.values()))
        bins = np.linspace(0, max(int(np.percentile(every, 99)), 1), _LENGTH_BINS + 1)
        for split, x in lengths.items():
            if len(x):
                counts, _ = np.histogram(np.minimum(x, bins[-1]), bins=bins)
                ax.stairs(counts, bins, label=f"{split} ({len(x)})")
        ax.set_title(f"{kind}: characters per row", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = plots / "lengths.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


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
