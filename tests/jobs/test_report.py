"""report.html (self-contained: table, embedded PNG curves, escaped text) and partial runs that
never overwrite the report of a whole run."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

from jobs.plan import load_plan
from jobs.report_html import write_report_html
from jobs.runner import run_job


class _Page(HTMLParser):
    """Tags, image sources, table cells and text of an HTML page (raises nothing on bad HTML:
    the checks below are on what it collected)."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.cells: list[str] = []
        self.text: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self._in_cell = tag in ("td", "th")

    def handle_endtag(self, tag):
        self._in_cell = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_cell:
            self.cells.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _stage(kind: str, out: Path | None, metrics: dict, status: str = "ran", error: str | None = None) -> dict:
    return {"kind": kind, "status": status, "dir": str(out) if out else None, "key": "k", "wall_s": 1.5,
            "metrics": metrics, "error": error}


def test_report_html_embeds_curves_ppo_reward_and_kl_and_win_rates(tmp_path):
    from alignment.tracking import TrackingSpec, open_tracker

    sft_dir, ppo_dir = tmp_path / "sft-k", tmp_path / "ppo-k"
    tracker = open_tracker(TrackingSpec(), sft_dir, main=True)
    for step in range(1, 6):
        tracker.log({"train/loss": 5.0 / step}, step)
    tracker.log({"eval/loss": 1.4}, 5)
    tracker.close()
    ppo_dir.mkdir()
    (ppo_dir / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "reward/score_raw": 0.1 * s, "kl/mean": 0.05 * s, "policy/loss": -0.1,
                    "value/loss": 0.3}) + "\n" for s in range(1, 5)))
    hostile = "<script>alert(1)</script> & 病人"
    report = {"job": "t$job", "source": "jobs/t.yaml", "seed": 0, "status": "failed", "started_at": "2026-12-06T00:00:00Z",
              "wall_s": 12.0, "partial": False, "headline": {"sft_loss_end": 1.0, "note": hostile},
              "stages": {"sft": _stage("sft", sft_dir, {"train_loss_start": 5.0, "train_loss_end": 1.0}),
                         "ppo$1": _stage("ppo", ppo_dir, {"reward_first": 0.1}),
                         "eval": _stage("eval", None, {"win_rate": 0.6, "win_rate_ci": [0.45, 0.74], "judged_ok": 40}),
                         "dpo": _stage("dpo", None, {}, status="failed", error=hostile)}}
    path = tmp_path / "report.html"
    write_report_html(report, path)
    page = _parse(path)
    assert "table" in page.tags and "script" not in page.tags
    assert {"sft", "ppo$1", "eval", "dpo"} <= set(page.cells)
    assert hostile in "".join(page.text)                      # shown as text, escaped in the source
    assert "<script>" not in path.read_text(encoding="utf-8")
    assert len(page.images) == 3                              # sft curves, ppo reward/KL, win rates
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert not {"link", "script", "iframe"} & set(page.tags) and "href=" not in path.read_text(encoding="utf-8")
    assert "0.6" in page.cells and "[0.45, 0.74]" in page.cells


def test_a_training_stage_without_curves_says_so(tmp_path):
    (tmp_path / "sft-k").mkdir()
    report = {"job": "t", "source": "t.yaml", "seed": 0, "status": "ok", "started_at": "x", "wall_s": 1.0,
              "partial": False, "headline": {}, "stages": {"sft": _stage("sft", tmp_path / "sft-k", {})}}
    write_report_html(report, tmp_path / "report.html")
    page = _parse(tmp_path / "report.html")
    assert not page.images and "no curves" in "".join(page.text)


def test_until_writes_a_partial_report_and_keeps_the_whole_one(toy_job):
    def run(**kw):
        return run_job(load_plan(toy_job), use_ray=False, progress=False, echo=lambda s: None, **kw)

    full = run()
    job_dir = Path(full["stages"]["dbl"]["dir"]).parent
    whole_json, whole_html = (job_dir / "report.json").read_bytes(), (job_dir / "report.html").read_bytes()
    assert json.loads(whole_json)["partial"] is False
    for kw in ({"until": "src"}, {"only": ["src"]}):
        partial = run(**kw)
        assert partial["partial"] is True and list(partial["stages"]) == ["src"]
        assert (job_dir / "report.json").read_bytes() == whole_json
        assert (job_dir / "report.html").read_bytes() == whole_html
        assert json.loads((job_dir / "report.partial.json").read_text())["stages"].keys() == {"src"}
        assert "partial run" in (job_dir / "report.partial.html").read_text(encoding="utf-8")
    assert run(only=["dbl"])["partial"] is False           # dbl and its ancestors are the whole job
    assert (job_dir / "report.json").read_bytes() != whole_json
