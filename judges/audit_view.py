"""``medalign audit view``: the auditor's workbench, one self-contained HTML file.

The page is ``judges/audit_view.html`` (markup, CSS and JavaScript inline) with the data embedded
as JSON in ``<script type="application/json">`` elements; it opens from disk with no server and
no network (a Content-Security-Policy allows only its own script, by hash). Everything a
candidate or a judge wrote is untrusted: the page renders it with ``textContent`` only, and the
JSON escapes ``<``, ``>`` and ``&`` so no text can close the element it sits in.

Data layout (built by :func:`build_data`):

* the index, parsed when the page opens: per judgment a few small columns (judge, template,
  status, order, scores, flags, department, intent, comparison, prompt, samples) as parallel
  arrays, per comparison its judgments, disagreement, gap and the reward pairs it produced, the
  verify result of every file and per-judge statistics (:func:`judges.audit.judge_summary`);
* the details (prompt messages, raw reply, span, errors, flag evidence) in chunks of
  ``CHUNK`` judgments, each with its own table of distinct lines (the prompt's lines repeat
  across the judgments of a prompt), parsed only when a comparison is opened or a text search
  needs them. So 100k judgments stay usable: the page parses a few MB when it opens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
import time
from pathlib import Path

from judges.audit import judge_summary
from judges.comparisons import PairView, group, latest_by_file, produced_pairs
from judges.flags import FLAGS
from judges.transcript_verify import verify_transcript

log = logging.getLogger("medalign.judges.audit_view")
TEMPLATE = Path(__file__).resolve().parent / "audit_view.html"
CHUNK = 500                               # judgments per detail chunk
ORDERS = ("ab", "ba", "single")
_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_STAT_KEYS = ("calls", "judgments", "status_counts", "swap_consistency", "swap_pairs",
              "first_position_win_rate", "tie_rate", "pairwise_rows", "length_spearman",
              "length_points", "flags", "flagged_judgments", "rows_without_flags",
              "half_judged_pairs", "pairs", "score_histogram", "latency_p50_s", "cost")


def embed_json(obj) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>``, ``&`` become ``\\u003c`` etc."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(x):
    """A number JSON can hold (NaN and infinities become None), or None."""
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


class _Table:
    """Distinct strings -> small integers."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.items: list[str] = []

    def __call__(self, value: str | None) -> int:
        if value is None:
            return -1
        got = self.ids.get(value)
        if got is None:
            got = self.ids[value] = len(self.items)
            self.items.append(value)
        return got


def _prompt_tags(path: str | None) -> dict[str, dict]:
    if not path:
        return {}
    from judges.tuples import read_rows

    return {str(r.get("prompt_id")): {k: r[k] for k in ("department", "intent") if r.get(k)}
            for _, r in read_rows(path)}


def _read_and_verify(paths: list[str], key: bytes | None) -> tuple[list[dict], list[list[dict]]]:
    """(verify result per file, every readable row per file): each file is parsed once."""
    results, rows = [], []
    for p in paths:
        log.info("reading and verifying %s", p)
        kept: list[dict] = []
        v = verify_transcript(p, key=key, keep_rows=kept)
        rows.append(kept)
        results.append({"path": str(p), "ok": v.ok, "complete": v.complete, "lines": v.lines,
                        "problems": v.problems[:50], "problem_count": len(v.problems),
                        "unchecked": v.unchecked, "chains": v.chains})
    return results, rows


def _stats(rows_by_file: list[list[dict]]) -> dict:
    """Per-judge statistics over every record (superseded ones count as calls)."""
    by_judge: dict[str, list[dict]] = {}
    for rows in rows_by_file:
        for r in rows:
            by_judge.setdefault(r["judge"], []).append(r)
    return {j: {k: _finite_all(v) for k, v in judge_summary(rs).items() if k in _STAT_KEYS}
            for j, rs in sorted(by_judge.items())}


def _finite_all(v):
    """``v`` with every non-finite float inside it replaced by None."""
    if isinstance(v, float):
        return _finite(v)
    if isinstance(v, dict):
        return {k: _finite_all(x) for k, x in v.items()}
    return v


def _detail(row: dict, lines: _Table) -> dict:
    """One judgment's detail record (texts as ids of distinct lines)."""
    return {"m": [[m.get("role"), [lines(x) for x in (m.get("content") or "").split("\n")]]
                  for m in row.get("messages") or []],
            "c": None if row.get("completion") is None else
            [lines(x) for x in row["completion"].split("\n")],
            "sp": row.get("span"), "e": row.get("error"), "fd": row.get("flag_details"),
            "lat": _finite(row.get("latency_s")), "ch": row.get("cache_hit"), "ts": row.get("timestamp"),
            "fr": row.get("finish_reason"), "at": len(row.get("attempts") or []),
            "jid": row["judgment_id"], "pv": row.get("parser_version"),
            "pos": row.get("positions")}


def _columns(comps: list[PairView], tags: dict[str, dict]) -> tuple[dict, list[dict], dict]:
    """Per-judgment columns, comparison columns, and the value tables they index."""
    t = {k: _Table() for k in ("judge", "template", "status", "prompt", "sample", "dept",
                               "intent", "file")}
    cols = {k: [] for k in ("file", "seq", "judge", "tpl", "status", "order", "prompt", "cmp",
                            "a", "b", "sA", "sB", "flags", "dept", "intent")}
    rows_in_order: list[dict] = []
    cmp_cols = {"pair": [], "disagree": [], "gap": [], "rows": [], "flags": []}
    for ci, c in enumerate(comps):
        cmp_cols["pair"].append(c.pair_id)
        cmp_cols["disagree"].append({True: 1, False: 0, None: -1}[c.disagree])
        cmp_cols["gap"].append(None if _finite(c.gap) is None else round(c.gap, 4))
        cmp_cols["flags"].append(sum(1 << FLAGS.index(f) for f in c.flags if f in FLAGS))
        cmp_cols["rows"].append([])
        for r in c.rows:
            i = len(rows_in_order)
            rows_in_order.append(r)
            cmp_cols["rows"][ci].append(i)
            pos, sc = r.get("positions") or {}, r.get("scores") or {}
            rtags = r.get("tags") or tags.get(r["prompt_id"], {})
            for key, value in (("file", r.get("_file", 0)), ("seq", r.get("seq")),
                               ("judge", t["judge"](r.get("judge"))),
                               ("tpl", t["template"](r.get("template_id"))),
                               ("status", t["status"](r.get("status"))),
                               ("order", ORDERS.index(r["order"]) if r.get("order") in ORDERS else -1),
                               ("prompt", t["prompt"](r["prompt_id"])), ("cmp", ci),
                               ("a", t["sample"](pos.get("A"))), ("b", t["sample"](pos.get("B"))),
                               ("sA", _finite(sc.get("A"))), ("sB", _finite(sc.get("B"))),
                               ("flags", sum(1 << FLAGS.index(f) for f in r.get("flags") or []
                                             if f in FLAGS)),
                               ("dept", t["dept"](rtags.get("department"))),
                               ("intent", t["intent"](rtags.get("intent")))):
                cols[key].append(value)
    return cols, rows_in_order, {"cmps": cmp_cols, "tables": {k: v.items for k, v in t.items()}}


def _produced(paths: list[str], comps: list[PairView], rows: list[dict]) -> dict:
    """The reward pairs (pairs.parquet beside each transcript) each comparison produced."""
    out = {"chosen": [], "rejected": [], "margin": [], "file": [], "by_cmp": [[] for _ in comps],
           "lineage": []}
    by_jid: dict[tuple, list[int]] = {}
    for f, path in enumerate(paths):
        pairs = produced_pairs(path)
        out["lineage"].append(None if pairs is None else bool(not pairs or "judgment_ids" in pairs[0]))
        for p in pairs or []:
            k = len(out["chosen"])
            out["chosen"].append(p["chosen_id"])
            out["rejected"].append(p["rejected_id"])
            out["margin"].append(_finite(p.get("margin")))
            out["file"].append(f)
            for jid in p.get("judgment_ids") or []:
                by_jid.setdefault((f, jid), []).append(k)
    for ci, c in enumerate(comps):
        found = {k for r in c.rows for k in by_jid.get((r.get("_file", 0), r["judgment_id"]), [])}
        out["by_cmp"][ci] = sorted(found)
    return out


def build_data(paths: list[str], key: bytes | None = None, prompts: str | None = None
               ) -> tuple[dict, list[dict]]:
    """(index, detail chunks) for the page."""
    files, rows_by_file = _read_and_verify(paths, key)
    log.info("statistics and comparisons of %d rows", sum(map(len, rows_by_file)))
    comps = group(latest_by_file(rows_by_file))
    stats = _stats(rows_by_file)
    del rows_by_file
    cols, rows, extra = _columns(comps, _prompt_tags(prompts))
    log.info("page data for %d judgments", len(rows))
    chunks = []
    for start in range(0, len(rows), CHUNK):
        lines = _Table()
        details = [_detail(r, lines) for r in rows[start:start + CHUNK]]
        chunks.append({"s": lines.items, "j": details})
    index = {"version": 1, "generated": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
             "files": files, "stats": stats, "n": len(rows),
             "chunk": CHUNK, "orders": list(ORDERS), "flagNames": list(FLAGS), "cols": cols,
             "produced": _produced(paths, comps, rows), **extra}
    return index, chunks


def render_page(index: dict, chunks: list[dict]) -> str:
    """The HTML page: the template with the data embedded and the CSP hash of its script."""
    template = TEMPLATE.read_text(encoding="utf-8")
    script = _SCRIPT.search(template).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    data = [f'<script type="application/json" id="medalign-index">{embed_json(index)}</script>']
    data += [f'<script type="application/json" id="medalign-chunk-{k}">{embed_json(c)}</script>'
             for k, c in enumerate(chunks)]
    return (template.replace("__SCRIPT_HASH__", f"sha256-{digest}")
            .replace("<!--__DATA__-->", "\n".join(data)))


def write_view(paths: list[str], out: str | Path, key: bytes | None = None,
               prompts: str | None = None) -> dict:
    """Write the page to ``out``; returns what it holds (judgments, comparisons, bytes)."""
    index, chunks = build_data([str(p) for p in paths], key, prompts)
    page = render_page(index, chunks)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return {"judgments": index["n"], "comparisons": len(index["cmps"]["pair"]),
            "bytes": out.stat().st_size}
