"""``medalign eval``: two tiny models on three eval sets, then a third model that generates, plays,
is graded and judged only for its own part; clinical tables, the referee, rubric grading and
multi-turn conversations with the local server's simulated patient; the report, the HTML page,
the CLI and its error lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from alignment.evaluation.config import EvalRunConfig
from alignment.evaluation.patient import CONVERSATIONS, TRANSCRIPT, read_conversations
from alignment.evaluation.run import run_evaluation
from judges.transcript_verify import verify_transcript
from medalign.stage import StageContext

CTX = StageContext(seed=0, progress=False)
FAST = {"sampling": {"max_new_tokens": 16, "batch_size": 64}, "n_bootstrap": 100}
# rubric grading of the first 3 cases of each set with a rubric (single_zh, multi_en: 6); the first
# 4 multi-turn cases (multi_en) played with the local patient, at most 3 doctor turns
PARTS = {"rubric": {"enabled": True, "max_cases": 3}, "multi_turn": {"enabled": True, "max_cases": 4, "max_turns": 3}}


def config(models: dict[str, Path], data: Path, **extra) -> EvalRunConfig:
    return EvalRunConfig(models=[{"name": n, "path": str(p)} for n, p in models.items()],
                         eval_sets={"data": [str(data)]}, **FAST, **extra)


@pytest.fixture(scope="module")
def two_then_three(tmp_path_factory, eval_data_dir, tiny_model_dir, tiny_sft_model_dir, third_model_dir):
    out = tmp_path_factory.mktemp("eval_run")
    two = {"base": tiny_model_dir, "sft": tiny_sft_model_dir}
    first = run_evaluation(config(two, eval_data_dir, **PARTS), out, CTX)
    second = run_evaluation(config({**two, "third": third_model_dir}, eval_data_dir, **PARTS), out, CTX)
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
    assert second["referee"]["pairs"]["base vs sft"] == first["referee"]["pairs"]["base vs sft"]
    assert len(second["leaderboard"]["rows"]) == 3
    # the referee on conversations: 2 orders per conversation both models finished on their own
    mt_runs = second["multi_turn"]["referee"]["runs"]
    assert mt_runs["base vs sft"]["api_calls"] == 0
    third_mt = sum(mt_runs[p]["api_calls"] for p in ("base vs third", "sft vs third"))
    cost = second["cost"]
    assert cost["third"]["judge_calls"] == 136 + third_mt and cost["base"]["judge_calls"] == 68 + mt_runs["base vs third"]["api_calls"]
    # patient, doctor and grader: nothing again for the first two, everything for the third
    for m in ("base", "sft"):
        before = first["cost"][m]
        assert cost[m]["patient_calls"] == 0 and cost[m]["patient_already_done"] == before["patient_calls"]
        assert cost[m]["doctor_generated"] == 0 and cost[m]["grader_calls"] == 0
        assert cost[m]["grader_already_done"] == before["grader_calls"] > 0
        assert second["multi_turn"]["models"][m]["all"] == first["multi_turn"]["models"][m]["all"]
        assert second["rubric"]["models"][m]["all"]["overall"] == first["rubric"]["models"][m]["all"]["overall"]
    assert cost["third"]["grader_calls"] == first["cost"]["base"]["grader_calls"]      # same cases, same rubrics


def test_report_html_has_the_sections_and_escapes_model_text(two_then_three):
    out, _, _ = two_then_three
    page = (out / "report.html").read_text(encoding="utf-8")
    for heading in ("Clinical ground truth", "Referee (HuatuoGPT", "Leaderboard (Bradley-Terry)", "Cost",
                    "Rubric grading (HealthBench", "Multi-turn with a simulated patient", "Referee on whole conversations"):
        assert heading in page
    assert page.count("data:image/png;base64,") == 4
    assert "<script" not in page


def test_rubric_grading_per_model_with_axes_themes_and_paired_differences(two_then_three):
    out, report, _ = two_then_three
    section = report["rubric"]
    assert section["cases"] == 6 and section["sets"] == ["multi_en", "single_zh"]
    for m in ("base", "sft"):
        a = section["models"][m]["all"]
        assert a["examples"] == 6 and a["scored"] + a["incomplete"] == 6
        assert set(a["criterion_statuses"]) == {"ok"}                    # the local grader reads every demo criterion
        assert a["calls"]["api_calls"] == a["calls"]["planned"] == sum(a["criterion_statuses"].values())
        assert 0.0 <= a["overall"]["ci_low"] <= a["overall"]["score"] <= a["overall"]["ci_high"] <= 1.0
        assert "accuracy" in a["by_axis"] and set(a["by_theme"]) <= {"context_seeking", "complete_information"}
        assert set(section["models"][m]["sets"]) == {"multi_en", "single_zh"}
        grades = (out / "rubric" / m / "rubric_grades.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(grades) == 6 and json.loads(grades[0])["prompt_id"] == "multi_en/multi-en-000"
        assert verify_transcript(out / "rubric" / m / "rubric_transcripts.jsonl").ok
    diff = section["paired"]["base vs sft"]
    scores = [section["models"][m]["all"]["overall"]["score"] for m in ("base", "sft")]
    assert diff["n"] == 6 and diff["diff"] == pytest.approx(scores[0] - scores[1])


def test_multi_turn_conversations_scored_by_ground_truth_and_the_referee(two_then_three, eval_data_dir):
    from alignment.evaluation.cases import read_eval_set

    out, report, _ = two_then_three
    section = report["multi_turn"]
    assert section["cases"] == 4 and section["sets"] == ["multi_en"] and section["patient"]["model"] == "medalign-patient"
    for m in ("base", "sft"):
        a = section["models"][m]["all"]
        assert a["conversations"] == 4 and sum(a["status_counts"].values()) == 4
        assert set(a["status_counts"]) <= {"diagnosed", "ended_by_patient", "max_turns"} and a["scored"] == 4
        assert 1.0 <= a["mean_turns"]["value"] <= 3.0 and a["asked_when_missing"]["n"] + a["needless_asking"]["n"] == 4
        convs = read_conversations(out / "multi_turn" / m / CONVERSATIONS)
        assert [c.case_id for c in convs] == [f"multi-en-{i:03d}" for i in range(4)]
        assert all(c.turns[0]["role"] == "assistant" for c in convs)
        calls = section["models"][m]["patient_calls"]
        assert calls["api_calls"] == sum(len(c.patient_judgment_ids) for c in convs)
        if calls["api_calls"]:
            assert verify_transcript(out / "multi_turn" / m / TRANSCRIPT).ok
        # the first doctor turn answers the case's own messages: the cached single-turn response
        assert section["models"][m]["doctor_generation"]["cached"] >= 4
    pair = section["referee"]["pairs"]["base vs sft"]
    assert pair["judged"] + pair["excluded"].get("conversation:patient_api_error", 0) == 4
    departments = {c.category for c in read_eval_set(eval_data_dir / "eval" / "multi_en.parquet").cases[:4]}
    assert set(pair["sets"]["multi_en"]["by_category"]) == departments and len(departments) == 4
    assert section["referee"]["template"] == "huatuo_referee_multiturn"
    rows = [json.loads(x) for x in Path(section["referee"]["transcripts"]).read_text(encoding="utf-8").splitlines()]
    assert {r["template_id"] for r in rows} == {"huatuo_referee_multiturn"} and {r["status"] for r in rows} == {"ok"}
    assert set(section["paired"]["base vs sft"]) >= {"diagnosis_accuracy", "asked_when_missing", "mean_turns"}


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
    assert main(["eval", str(cfg), "--out", str(tmp_path / "o"), "--no-progress", "rubric.enabled=true",
                 "rubric.max_cases=2", "multi_turn.enabled=true"]) == 0
    out = capsys.readouterr().out
    assert "rubric (2 cases)" in out and "grader calls" in out
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["multi_turn"] == {"enabled": True, "note": "no case carries a case card"}   # single-turn only
    assert main(["eval", str(cfg), "referee.pairs=baseline"]) == 2
    err = capsys.readouterr().err
    assert "referee.baseline must name one of the models" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["eval", str(cfg), "multi_turn.patient.model=medalign-rubric-v2"]) == 2
    err = capsys.readouterr().err
    assert "multi_turn.patient.model: the local judge server plays this part as 'medalign-patient'" in err


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
