"""``medalign eval``: two tiny models on three eval sets, then a third model that generates and is
judged only for its own pairs; the report, the HTML page, the CLI and its error lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from alignment.evaluation.config import EvalRunConfig
from alignment.evaluation.run import run_evaluation
from medalign.stage import StageContext

CTX = StageContext(seed=0, progress=False)
FAST = {"sampling": {"max_new_tokens": 16, "batch_size": 64}, "n_bootstrap": 100}


def config(models: dict[str, Path], data: Path, **extra) -> EvalRunConfig:
    return EvalRunConfig(models=[{"name": n, "path": str(p)} for n, p in models.items()],
                         eval_sets={"data": [str(data)]}, **FAST, **extra)


@pytest.fixture(scope="module")
def two_then_three(tmp_path_factory, eval_data_dir, tiny_model_dir, tiny_sft_model_dir, third_model_dir):
    out = tmp_path_factory.mktemp("eval_run")
    two = {"base": tiny_model_dir, "sft": tiny_sft_model_dir}
    first = run_evaluation(config(two, eval_data_dir), out, CTX)
    second = run_evaluation(config({**two, "third": third_model_dir}, eval_data_dir), out, CTX)
    return out, first, second


def test_two_models_give_clinical_tables_referee_and_leaderboard(two_then_three):
    out, report, _ = two_then_three
    assert [s["name"] for s in report["eval_sets"]] == ["kuake_real", "multi_en", "single_zh"]
    assert [s["cases"] for s in report["eval_sets"]] == [4, 20, 10]
    clinical = report["clinical"]
    assert clinical["applies_to"] == ["multi_en", "single_zh"]
    assert "do not apply" in clinical["not_applicable"]["kuake_real"]
    sft = clinical["models"]["sft"]
    # n = the cases where each check applies: every multi-turn case asks-or-not; one single-turn
    # diagnosis question; length over every case, the real ones included
    assert sft["sets"]["kuake_real"]["diagnosis_accuracy"]["n"] == 0
    assert sft["sets"]["kuake_real"]["mean_response_length"]["n"] == 4
    asking = sft["all"]["asks_when_missing"]["n"] + sft["all"]["needless_asking"]["n"]
    assert asking == 20 + 1
    for metric in ("diagnosis_accuracy", "department_accuracy", "asks_when_missing", "red_flag_coverage"):
        stat = sft["all"][metric]
        assert stat["n"] > 0 and 0 <= stat["ci_low"] <= stat["value"] <= stat["ci_high"] <= 1
    assert set(clinical["paired"]) == {"base vs sft"}
    pair = report["referee"]["pairs"]["base vs sft"]
    assert pair["judged"] == 34 and set(pair["sets"]) == {"kuake_real", "multi_en", "single_zh"}
    assert len(pair["sets"]["single_zh"]["by_category"]) == 10          # the ten intents
    overall = pair["overall"]
    assert overall["wins"] + overall["ties"] + overall["losses"] == overall["n"] == 34 - sum(pair["excluded"].values())
    assert overall["performance_ratio"] == pytest.approx(overall["mean_a"] / overall["mean_b"])
    rows = report["leaderboard"]["rows"]
    assert {r["model"] for r in rows} == {"base", "sft"} and rows[0]["strength"] == -rows[1]["strength"]
    transcripts = out / "referee" / "transcripts.jsonl"
    lines = [json.loads(x) for x in transcripts.read_text(encoding="utf-8").splitlines()]
    assert {r["order"] for r in lines[:68]} == {"ab", "ba"} and lines[0]["template_id"] == "huatuo_referee"


def test_a_third_model_generates_and_is_judged_only_for_its_pairs(two_then_three):
    _, first, second = two_then_three
    gen = second["generation"]
    assert (gen["base"]["generated"], gen["sft"]["generated"], gen["third"]["generated"]) == (0, 0, 34)
    assert gen["base"]["cached"] == gen["sft"]["cached"] == 34
    runs = second["referee"]["runs"]
    assert runs["base vs sft"]["api_calls"] == 0 and runs["base vs sft"]["already_done"] == 68
    assert runs["base vs third"]["api_calls"] == runs["sft vs third"]["api_calls"] == 68    # 34 cases x 2 orders
    assert second["cost"]["third"]["judge_calls"] == 136 and second["cost"]["base"]["judge_calls"] == 68
    assert second["referee"]["pairs"]["base vs sft"] == first["referee"]["pairs"]["base vs sft"]
    assert len(second["leaderboard"]["rows"]) == 3


def test_report_html_has_the_sections_and_escapes_model_text(two_then_three):
    out, _, _ = two_then_three
    page = (out / "report.html").read_text(encoding="utf-8")
    for heading in ("Clinical ground truth", "Referee (HuatuoGPT", "Leaderboard (Bradley-Terry)", "Cost"):
        assert heading in page
    assert page.count("data:image/png;base64,") == 3
    assert "<script" not in page


def test_the_cli_runs_a_config_and_reports_one_line_errors(tmp_path, capsys, eval_data_dir, tiny_sft_model_dir):
    import yaml

    from medalign.cli import main

    cfg = tmp_path / "eval.yaml"
    cfg.write_text(yaml.safe_dump({"name": "cli", "models": [{"name": "sft", "path": str(tiny_sft_model_dir)}],
                                   "eval_sets": {"data": [str(eval_data_dir)], "names": ["single_zh"]}, **FAST}))
    assert main(["eval", str(cfg), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "clinical (sets with ground truth: single_zh)" in out and "referee" not in out
    assert (tmp_path / "o" / "report.html").is_file()
    assert main(["eval", str(cfg), "referee.pairs=baseline"]) == 2
    err = capsys.readouterr().err
    assert "referee.baseline must name one of the models" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_failed_stage_is_never_evaluated(tmp_path, tiny_sft_model_dir):
    from alignment.evaluation.generations import resolve_checkpoint
    from medalign.errors import UserError

    stage = tmp_path / "ppo-abc"
    shutil.copytree(tiny_sft_model_dir, stage / "model")
    (stage / "manifest.json").write_text(json.dumps({"name": "ppo", "status": "failed", "problems": ["KL blew up"]}))
    with pytest.raises(UserError, match="did not succeed \\(KL blew up\\): a failed stage is never evaluated"):
        resolve_checkpoint(str(stage))
    (stage / "manifest.json").write_text(json.dumps({"name": "ppo", "status": "ok"}))
    assert resolve_checkpoint(str(stage)) == str(stage / "model")
    with pytest.raises(UserError, match="no such checkpoint"):
        resolve_checkpoint(str(tmp_path / "nothing"))
