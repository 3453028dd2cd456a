"""What a data team ran into (issue 9 §5), one test each, and the data stage's stable output (§4):
all-or-nothing builds, validate = build's checks, empty files, scrubbed quarantine, CLI errors
without tracebacks, --quiet, the format list, the length plot, identical reruns."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_recipes import stage
from data_recipes.build import build
from data_recipes.recipe_load import load_recipe
from medalign.artifacts import digest_path
from medalign.cli import main
from medalign.config import ConfigError
from medalign.stage import StageContext

RECIPE = """
name: t
seed: 0
{extra}
sources:
  - {{name: qa, path: "{path}", format: {fmt}, origin: real_doctor, transforms: [scrub_pii]{source_extra}}}
outputs:
  sft:
    mix: [{{source: qa, count: {count}}}]
{outputs}
"""


@pytest.fixture
def qa_file(recipe_corpus, tmp_path) -> Path:
    """20 real-doctor QA lines (HuatuoGPT jsonl) in tmp_path/data/qa.jsonl."""
    lines = (recipe_corpus / "huatuo_real_qa_zh.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    path = tmp_path / "data" / "qa.jsonl"
    path.parent.mkdir()
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def recipe(write_recipe, path="data/qa.jsonl", fmt="huatuo_sft", count="all", outputs="", extra="",
           source_extra="") -> Path:
    return write_recipe(RECIPE.format(path=path, fmt=fmt, count=count, outputs=outputs, extra=extra,
                                      source_extra=source_extra))


def test_a_failed_build_leaves_the_previous_build_intact(qa_file, write_recipe, tmp_path):
    out = tmp_path / "out"
    prompts = "  prompts:\n    mix: [{source: qa, count: all}]"
    build(load_recipe(recipe(write_recipe, outputs=prompts)), out)
    before = digest_path(out)
    with pytest.raises(ConfigError, match="asks for 500 rows"):       # fails after reading everything
        build(load_recipe(recipe(write_recipe, count=500)), out)
    assert digest_path(out) == before

    def crash(jobs, files):                                          # a failure in the middle of pass 1
        from data_recipes.process import local_batches

        yield next(iter(local_batches(jobs, files)))
        raise OSError("No space left on device")
    with pytest.raises(OSError):
        build(load_recipe(recipe(write_recipe)), out, run_batches=crash)
    assert digest_path(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out", "recipe.yaml"]   # no temporary folder left
    # a complete build replaces the previous one as a whole: no prompts/ left from the first
    build(load_recipe(recipe(write_recipe)), out)
    assert sorted(p.name for p in out.iterdir()) == ["build_report.json", "quarantine.jsonl", "sft"]


def test_validate_does_the_checks_build_would_fail_on_and_writes_nothing(qa_file, write_recipe, tmp_path, capsys):
    too_many = recipe(write_recipe, count=500)
    files = sorted(tmp_path.rglob("*"))
    assert main(["data", "validate", str(too_many)]) == 2
    assert "outputs.sft.mix.0.count: asks for 500 rows but source 'qa' gives 20" in capsys.readouterr().err
    assert main(["data", "validate", str(too_many), "--no-read"]) == 0           # the quick check cannot know
    capsys.readouterr()
    wrong = recipe(write_recipe, fmt="alpaca")
    assert main(["data", "validate", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert "sources[qa].format: every one of the 20 records of source 'qa' is malformed" in err
    assert "is format 'alpaca' right" in err
    assert main(["data", "validate", str(recipe(write_recipe))]) == 0
    assert "20 records read, 0 quarantined, 20 kept" in capsys.readouterr().out
    assert sorted(tmp_path.rglob("*")) == files                                     # nothing written


def test_an_empty_source_file_is_an_error_or_a_counted_warning(qa_file, write_recipe, tmp_path):
    (qa_file.parent / "empty.jsonl").write_text("", encoding="utf-8")
    path = recipe(write_recipe, path="data/*.jsonl")
    with pytest.raises(ConfigError) as err:
        build(load_recipe(path), tmp_path / "out")
    (problem,) = err.value.problems
    assert f"{path}:5: sources[qa].path: file {qa_file.parent / 'empty.jsonl'} of source 'qa' has no records" in problem
    assert "allow_empty: true" in problem
    report = build(load_recipe(recipe(write_recipe, path="data/*.jsonl", source_extra=", allow_empty: true")),
                   tmp_path / "out")
    assert report["sources"]["qa"]["empty_files"] == 1 and report["outputs"]["sft"]["total_actual"] > 0
    assert report["warnings"] == [f"source 'qa': file {(qa_file.parent / 'empty.jsonl').resolve()} has no "
                                  f"records (allow_empty: true)"]


def test_quarantine_is_scrubbed_unless_the_recipe_opts_in(qa_file, write_recipe, tmp_path):
    with open(qa_file, "a", encoding="utf-8") as f:
        f.write('{"data": ["问：我叫王小明，电话13812345678，邮箱 wxm@example.com"\n')   # malformed: no closing ]
    scrubbed = build(load_recipe(recipe(write_recipe)), tmp_path / "a")
    (line,) = [json.loads(x) for x in (tmp_path / "a" / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]
    assert line["scrubbed"] and "13812345678" not in line["text"] and "wxm@example.com" not in line["text"]
    assert "<PHONE>" in line["text"] and "<EMAIL>" in line["text"] and "<NAME>" in line["text"]
    assert scrubbed["quarantine"]["pii_spans"] == {"email": 1, "name": 1, "phone": 1}
    assert scrubbed["warnings"] == []
    raw = build(load_recipe(recipe(write_recipe, extra="quarantine_raw: true")), tmp_path / "b")
    (line,) = [json.loads(x) for x in (tmp_path / "b" / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]
    assert not line["scrubbed"] and "13812345678" in line["text"]
    assert len(raw["warnings"]) == 1 and "not scrubbed (quarantine_raw: true)" in raw["warnings"][0]


def test_stats_and_preview_errors_are_one_clear_line(recipe_corpus, tmp_path, capsys):
    assert main(["data", "stats", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: not a data build (no build_report.json)" in err and "Traceback" not in err
    (tmp_path / "build_report.json").write_text("{not json", encoding="utf-8")
    assert main(["data", "stats", str(tmp_path)]) == 2
    assert "not a readable build report" in capsys.readouterr().err
    assert main(["data", "preview", "quickstart", "--var", f"corpus={recipe_corpus}", "--source", "nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--source 'nope'" in captured.err and "doctor_dialogues, doctor_qa, distilled_instructions" in captured.err


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medalign.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_quiet_prints_no_info_lines(tmp_path):
    args = ["data", "build", "quickstart", "outputs.sft.total=100", "--synthetic", "60"]
    loud = _cli(*args, "--out", str(tmp_path / "a"), cwd=tmp_path)
    quiet = _cli(*args, "--out", str(tmp_path / "b"), "--quiet", cwd=tmp_path)
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert " INFO " in loud.stderr                       # the build logs INFO lines without --quiet
    assert " INFO " not in quiet.stderr and "Traceback" not in quiet.stderr
    assert "sft: 100 rows" in quiet.stdout


def test_the_readme_lists_every_format_of_the_registry(repo_root):
    from data_recipes.readers import FORMATS

    text = (repo_root / "data_recipes" / "recipes" / "README.md").read_text(encoding="utf-8")
    section = text.split("## Formats", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
    assert sorted(listed) == sorted(FORMATS) and len(listed) == len(set(listed))


def test_length_plot_is_split_by_source_and_says_where_it_is_clipped(quickstart_build, tmp_path):
    from data_recipes.stats import dataset_stats, length_clip

    out, report = quickstart_build
    summary = dataset_stats(out, tmp_path)
    sft = summary["outputs"]["sft"]
    assert set(sft["chars_per_row_by_source"]) == set(report["outputs"]["sft"]["by_source"])
    assert sum(s["n"] for s in sft["chars_per_row_by_source"].values()) == 400
    assert "99th percentile" in sft["length_plot"]["caption"] or "not clipped" in sft["length_plot"]["caption"]
    assert (tmp_path / "lengths.png").is_file()
    clipped = length_clip(np.array([*range(1, 201), 10_000]))
    assert clipped["clipped"] and clipped["rows_above"] == 2 and clipped["end"] == 199
    assert clipped["caption"] == "clipped at the 99th percentile (199 chars): 2 longer rows in the last bin"
    flat = length_clip(np.array([5, 5, 5]))
    assert not flat["clipped"] and flat["caption"] == "not clipped (longest row: 5 chars)"


@pytest.mark.parametrize("corpus", ["synthetic", "external"])
def test_rerunning_the_data_stage_gives_the_same_output_digest(corpus, recipe_corpus, tmp_path):
    """§4: a data stage rerun on the same inputs (in another directory) writes the same bytes, so
    every downstream stage key stays; timings and absolute paths go to the metrics."""
    if corpus == "synthetic":
        cfg = stage.Config(synthetic={"n_consultations": 60, "seed": 0}, overrides=["outputs.sft.total=100"])
    else:
        cfg = stage.Config(variables={"corpus": str(recipe_corpus)}, overrides=["outputs.sft.total=100"])
    runs = {}
    for name in ("a", "b"):
        metrics = stage.run(cfg, {}, tmp_path / name, StageContext(progress=False))
        runs[name] = digest_path(tmp_path / name), metrics
    assert runs["a"][0] == runs["b"][0]
    report = (tmp_path / "a" / "build_report.json").read_text(encoding="utf-8")
    assert str(tmp_path) not in report and "timings" not in report
    metrics = runs["a"][1]
    assert metrics["build_s"] >= 0 and metrics["run"]["out"] == str((tmp_path / "a").resolve())
    assert all(Path(p).is_file() for p in metrics["run"]["files"].values())
