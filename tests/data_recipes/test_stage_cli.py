"""The `data` stage (fresh-clone mode with a generated corpus) and `medalign data ...` commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from data_recipes import stage
from medalign.cli import main
from medalign.config import ConfigError
from medalign.stage import StageContext

SMALL = ["outputs.sft.total=400"]


def test_data_stage_generates_the_corpus_and_builds(tmp_path, repo_root):
    cfg = stage.Config(synthetic={"n_consultations": 200, "seed": 0, "languages": ["zh"]}, overrides=SMALL)
    assert stage.input_files(cfg) == [(repo_root / "data_recipes/recipes/quickstart.yaml").resolve()]
    metrics = stage.run(cfg, {}, tmp_path, StageContext(progress=False))
    assert (tmp_path / "corpus" / "meddialog_raw_zh.txt").is_file()
    assert sum(metrics[f"sft_{s}"] for s in ("train", "validation", "test")) == 400
    assert metrics["prompts_test"] > 0 and metrics["quarantined"] == 0
    prompts = pq.read_table(tmp_path / "prompts" / "test.parquet")
    assert prompts.schema.names == ["prompt_id", "consultation_id", "messages", "reference", "origin", "source",
                                    "language", "department", "provenance"]
    for kind in ("sft", "prompts", "preferences", "ranked", "pretrain"):
        assert all((tmp_path / kind / f"{s}.parquet").is_file() for s in ("train", "validation", "test"))


def test_data_recipes_never_imports_ray_or_jobs():
    code = ("import sys, data_recipes.build, data_recipes.stage, data_recipes.cli, data_recipes.stats, "
            "data_recipes.preview; assert 'ray' not in sys.modules, 'ray imported'; "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'jobs'], 'jobs imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_line_of_data_recipes_imports_jobs_not_even_lazily(repo_root):
    import re

    pattern = re.compile(r"^\s*(import|from)\s+jobs\b")
    offenders = [f"{p}:{n}" for p in (repo_root / "data_recipes").rglob("*.py")
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.match(line)]
    assert offenders == []


def test_build_ray_without_the_jobs_backend_is_one_clear_error(recipe_corpus, tmp_path, monkeypatch, capsys):
    from data_recipes import cli

    monkeypatch.setattr(cli, "_BACKENDS", {})
    parser = __import__("argparse").ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["data", "build", "quickstart", "--var", f"corpus={recipe_corpus}",
                              "--out", str(tmp_path / "o"), "--ray"])
    with pytest.raises(ConfigError, match="--ray: no Ray build backend; it comes with the jobs package"):
        args.func(args)
    assert not (tmp_path / "o").exists()


def test_medalign_cli_wires_the_ray_backend_from_jobs():
    from data_recipes import cli
    from medalign.cli import build_parser

    build_parser()
    assert cli._BACKENDS["ray"].__module__ == "jobs.cli"


def test_data_stage_config_and_input_files(recipe_corpus):
    with pytest.raises(ValueError, match="not both"):
        stage.Config(synthetic={}, variables={"corpus": "x"})
    cfg = stage.Config(variables={"corpus": str(recipe_corpus)})
    files = stage.input_files(cfg)
    assert files[0].name == "quickstart.yaml"
    assert {f.name for f in files[1:]} >= {"meddialog_raw_zh.txt", "huatuo_real_qa_zh.jsonl", "ranked_zh.jsonl"}
    with pytest.raises(ConfigError, match="not found"):
        stage.input_files(stage.Config(recipe="no_such_recipe"))


def test_cli_validate_build_stats_preview(recipe_corpus, tmp_path, capsys):
    var = ["--var", f"corpus={recipe_corpus}"]
    assert main(["data", "validate", "quickstart", *SMALL, *var]) == 0
    assert "ok:" in capsys.readouterr().out
    out = tmp_path / "built"
    assert main(["data", "build", "quickstart", *SMALL, *var, "--out", str(out), "--quiet"]) == 0
    assert "sft: 400 rows" in capsys.readouterr().out
    assert main(["data", "stats", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["outputs"]["sft"]["rows"]["train"] > 0
    assert summary["sources"]["doctor_dialogues"]["origin"] == "real_doctor"
    assert all(p.endswith(".png") for p in summary["plots"]) and (out / "stats" / "lengths.png").is_file()
    assert main(["data", "stats", str(out), "--no-plots"]) == 0
    assert "doctor_dialogues" in capsys.readouterr().out
    assert main(["data", "preview", "quickstart", *var, "-n", "2", "--source", "doctor_dialogues"]) == 0
    text = capsys.readouterr().out
    assert "== source doctor_dialogues" in text and "-> sft/per_turn_examples #t0" in text
    assert "-> prompts/per_turn_prompts" in text


def test_cli_reports_recipe_errors(tmp_path, capsys, write_recipe):
    path = write_recipe("name: x\nseed: 0\nsources: []\noutputs: {}\n")
    assert main(["data", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: sources:" in err


def test_cli_synth(tmp_path, capsys):
    assert main(["data", "synth", str(tmp_path / "c"), "--n", "20", "--languages", "en"]) == 0
    assert (tmp_path / "c" / "meddialog_raw_en.txt").is_file()
    assert "meddialog_raw_en.txt" in capsys.readouterr().out


def test_cli_build_with_synthetic_corpus(tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["data", "build", "quickstart", *SMALL, "--synthetic", "200", "--out", str(out), "--quiet"]) == 0
    assert (out / "corpus" / "meddialog_raw_zh.txt").is_file()
    report = json.loads((out / "build_report.json").read_text(encoding="utf-8"))
    assert report["recipe"]["variables"] == ["corpus"]          # names only: no absolute path in the report
    files = report["sources"]["doctor_dialogues"]["files"]
    assert [f["path"] for f in files] == ["corpus/meddialog_raw_zh.txt"]   # relative to the build folder
    assert not (tmp_path / ".q.building").exists()
