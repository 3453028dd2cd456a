"""jobs/meddialog_transfer.yaml (two data stages and three sft stages in one job) and
jobs/bias_scales.yaml: plan wiring, keys, inputs and the report; the transfer job end to end, small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.execute import resolve_stage
from jobs.plan import load_plan
from jobs.report import StageOutcome, headline, write_report
from medalign.config import ConfigError

REPO = Path(__file__).resolve().parents[2]
TRANSFER = REPO / "jobs" / "meddialog_transfer.yaml"
BIAS = REPO / "jobs" / "bias_scales.yaml"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)          # the jobs name recipes and scales relative to the repository


def _wiring(plan) -> dict:
    return {name: {k: r.stage for k, r in st.inputs.items()} for name, st in plan.stages.items()}


def test_transfer_plan_wires_each_stage_of_a_kind_to_its_own_inputs(capsys):
    from medalign.cli import main

    plan = load_plan(TRANSFER)
    assert {n: s.kind for n, s in plan.stages.items()} == {
        "data_source": "data", "data_target": "data", "bootstrap": "bootstrap", "sft_source": "sft",
        "sft_target": "sft", "sft_target_only": "sft", "transfer_eval": "transfer_eval"}
    assert _wiring(plan) == {
        "data_source": {}, "data_target": {}, "bootstrap": {"data": "data_source"},
        "sft_source": {"data": "data_source", "model": "bootstrap"},
        "sft_target": {"data": "data_target", "model": "sft_source"},
        "sft_target_only": {"data": "data_target", "model": "bootstrap"},
        "transfer_eval": {"data": "data_target", "transfer": "sft_target", "target_only": "sft_target_only",
                          "source_only": "sft_source"}}
    assert all(plan.stages[n].inputs["model"].is_model for n in ("sft_source", "sft_target", "sft_target_only"))
    # the same budget: both target runs have one config
    assert plan.stages["sft_target"].config == plan.stages["sft_target_only"].config
    assert plan.stages["data_target"].config.synthetic.sizes == {"meddialog_outbreak": 1088}
    assert main(["run", str(TRANSFER), "--plan"]) == 0
    assert "sft_target_only kind=sft           inputs: data<-data_target, model<-bootstrap" in capsys.readouterr().out


def test_an_override_of_one_stage_of_a_kind_leaves_the_others(tmp_path):
    plan = load_plan(TRANSFER, ["stages.sft_target.config.optim.epochs=1"])
    assert plan.stages["sft_target"].config.optim.epochs == 1
    assert plan.stages["sft_target_only"].config.optim.epochs == 3
    assert plan.stages["sft_source"].config.optim.epochs == 2


def test_a_stage_of_a_kind_reads_what_its_own_data_stage_makes():
    with pytest.raises(ConfigError, match=r"stages.transfer_eval.inputs.data: transfer_eval reads prompts from stage "
                                          r"'data_source', whose recipe makes only \['sft'\]"):
        load_plan(TRANSFER, ["stages.transfer_eval.inputs.data=data_source"])


def test_keys_of_stages_of_one_kind_follow_their_inputs(tmp_path):
    """sft_target and sft_target_only share kind and config; their keys differ by the model they
    start from, and even equal keys would give two directories (the name leads the directory)."""
    plan = load_plan(TRANSFER, [f"run_dir={tmp_path}"])
    manifests = {n: {"outputs": {"digest": f"digest-of-{n}"}} for n in plan.stages}
    dirs = {n: tmp_path / n for n in plan.stages}
    target = resolve_stage(plan, plan.stages["sft_target"], manifests, dirs)
    alone = resolve_stage(plan, plan.stages["sft_target_only"], manifests, dirs)
    assert target.inputs == {"data": str(dirs["data_target"]), "model": str(dirs["sft_source"] / "model")}
    assert alone.inputs == {"data": str(dirs["data_target"]), "model": str(dirs["bootstrap"] / "model")}
    assert target.input_digests["model"] == "digest-of-sft_source/model"
    assert target.key != alone.key
    assert target.out_dir.name.startswith("sft_target-") and alone.out_dir.name.startswith("sft_target_only-")
    same = dict(manifests, sft_source={"outputs": {"digest": "digest-of-bootstrap"}})
    twin = resolve_stage(plan, plan.stages["sft_target"], same, dict(dirs, sft_source=dirs["bootstrap"]))
    assert twin.key == alone.key and twin.out_dir != alone.out_dir
    evaluation = resolve_stage(plan, plan.stages["transfer_eval"], manifests, dirs)
    assert evaluation.inputs["transfer"] == str(dirs["sft_target"] / "model")
    assert evaluation.inputs["target_only"] == str(dirs["sft_target_only"] / "model")


def _outcome(name: str, kind: str, metrics: dict) -> StageOutcome:
    return StageOutcome(name, kind, "ran", Path("/x") / name, {"key": "k", "metrics": metrics,
                                                              "timings": {"wall_s": 1.0}})


def test_the_report_names_each_stage_of_a_kind(tmp_path):
    outcomes = {"sft_source": _outcome("sft_source", "sft", {"train_loss_end": 2.0}),
                "sft_target": _outcome("sft_target", "sft", {"train_loss_end": 1.5}),
                "transfer_eval": _outcome("transfer_eval", "transfer_eval",
                                          {"gain_bleu_4": 0.1, "gain_bleu_4_ci": [0.05, 0.2]})}
    head = headline(outcomes)
    assert head["sft_loss_end[sft_source]"] == 2.0 and head["sft_loss_end[sft_target]"] == 1.5
    assert "sft_loss_end" not in head
    assert head["transfer_gain_bleu_4"] == 0.1 and head["transfer_gain_bleu_4_ci95"] == [0.05, 0.2]
    assert headline({"sft": _outcome("sft", "sft", {"train_loss_end": 2.0})}) == {"sft_loss_end": 2.0}
    plan = load_plan(TRANSFER, [f"run_dir={tmp_path}"])
    plan.job_dir.mkdir(parents=True)
    lines: list[str] = []
    report = write_report(plan, list(plan.stages), outcomes, started=0.0, echo=lines.append)
    assert report["stages"]["sft_target"]["metrics"] == {"train_loss_end": 1.5}
    assert "sft_loss_end[sft_source]=2" in "\n".join(lines)            # brackets are text, not terminal markup
    assert json.loads((plan.job_dir / "report.json").read_text())["headline"] == head


def test_bias_plan_compares_the_models_the_job_has():
    plan = load_plan(BIAS)
    assert _wiring(plan)["bias"] == {"sft": "sft", "ppo": "ppo", "rsft": "rsft"}
    assert [r.rule for r in plan.stages["bias"].config.respondents] == [
        "endorse_stigma", "reject_stigma", "agree_all", "refuse"]
    # usable in any job: added to the quickstart by overrides, it asks that job's sft and ppo
    quick = load_plan(REPO / "jobs" / "quickstart.yaml", ["stages.bias.kind=bias"])
    assert _wiring(quick)["bias"] == {"sft": "sft", "ppo": "ppo"}
    with pytest.raises(ConfigError, match=r"stages.bias.config.respondents.0: Value error, give either rule or base_url"):
        load_plan(BIAS, ["stages.bias.config.respondents=[{name: x}]"])


def test_files_a_stage_config_names_are_checked_when_the_job_is_planned(tmp_path):
    """A missing or bad scale or names file fails the plan, not the stage after the training."""
    from medalign.cli import main

    text = BIAS.read_text(encoding="utf-8").splitlines()
    line = next(i for i, t in enumerate(text, 1) if t.startswith("  bias:")) + 2       # its config:
    with pytest.raises(ConfigError) as e:
        load_plan(BIAS, ["stages.bias.config.scales=[nope.yaml]"])
    assert e.value.problems == [f"{BIAS}:{line}: stages.bias.config: scales.0: scale 'nope.yaml' not found (looked "
                                "in the working directory, the repository and alignment/bias/scales/)"]
    en_only = tmp_path / "en.yaml"
    en_only.write_text((REPO / "alignment/bias/scales/demo_cami_style.yaml").read_text(encoding="utf-8")
                       .replace("languages: [zh, en]", "languages: [en]"), encoding="utf-8")
    with pytest.raises(ConfigError, match="scale demo_cami_style has no zh text"):
        load_plan(BIAS, [f"stages.bias.config.scales=[{en_only}]"])
    with pytest.raises(ConfigError, match=r"stages.transfer_eval.config: target_conditions: nope.yaml not found"):
        load_plan(TRANSFER, ["stages.transfer_eval.config.target_conditions=nope.yaml"])
    assert main(["run", str(BIAS), "--plan"]) == 0


SMALL = ["stages.data_source.config.synthetic.n_consultations=120",
         "stages.data_target.config.synthetic.sizes.meddialog_outbreak=100",
         "stages.bootstrap.config.tokenizer.vocab_size=1024",
         "stages.sft_source.config.optim.epochs=1", "stages.sft_source.config.max_length=128",
         "stages.sft_target.config.optim.epochs=1", "stages.sft_target.config.max_length=128",
         "stages.sft_target_only.config.optim.epochs=1", "stages.sft_target_only.config.max_length=128",
         "stages.transfer_eval.config.n_bootstrap=200",
         "stages.transfer_eval.config.sampling.max_new_tokens=16"]


@pytest.mark.slow
def test_the_transfer_job_runs_end_to_end_and_is_reused(tmp_path, run_lines):
    report = run_lines(TRANSFER, *SMALL, f"run_dir={tmp_path}")
    assert report["status"] == "ok", "\n".join(report["_lines"])
    assert all(s["status"] == "ran" for s in report["stages"].values())
    keys = [report["stages"][n]["key"] for n in ("sft_source", "sft_target", "sft_target_only")]
    assert len(set(keys)) == 3
    m = report["stages"]["transfer_eval"]["metrics"]
    for name in ("perplexity", "bleu_4", "distinct_2", "diagnosis_accuracy"):
        assert f"gain_{name}" in m and len(m[f"gain_{name}_ci"]) == 2
        assert {f"{name}_{model}" for model in ("transfer", "target_only", "source_only")} <= set(m)
    assert m["perplexity_transfer"] > 1 and m["prompts"] == report["stages"]["data_target"]["metrics"]["prompts_test"]
    out = Path(report["stages"]["transfer_eval"]["dir"])
    detail = json.loads((out / "transfer_eval.json").read_text(encoding="utf-8"))
    gain = detail["gains_of_transfer_over"]["target_only"]["perplexity"]
    assert gain["gain"] == pytest.approx(gain["b"] - gain["a"])          # target-only minus transfer
    assert "Figures with 95% intervals" in (tmp_path / "meddialog_transfer" / "report.html").read_text()
    again = run_lines(TRANSFER, *SMALL, f"run_dir={tmp_path}")
    assert all(s["status"] == "reused" for s in again["stages"].values())
