"""The routing stages: router (alone and multitask), routing_gain, doctor_rank, policy_routing.

Stage runs on tiny models are marked slow; the comparisons read hand-written predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from medalign.stage import StageContext

CTX = StageContext(seed=0, progress=False)


def _case(cid: str, text: str, department: str, doctor: str | None = None, profile: str | None = None,
          reply: str = "多久了？") -> dict:
    return {"case_id": f"src:{cid}#case", "consultation_id": f"src:{cid}",
            "messages": [{"role": "user", "content": text}], "reply": reply, "department": department,
            "diagnosis": None, "doctor": doctor, "doctor_profile": profile, "origin": "real_doctor",
            "source": "src", "language": "zh", "provenance": "{}"}


def write_cases(base: Path, splits: dict[str, list[dict]]) -> Path:
    (base / "cases").mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        pd.DataFrame(rows).to_parquet(base / "cases" / f"{split}.parquet", index=False)
    return base


def write_router(base: Path, target: str, cases: list[tuple[str, str, list[str]]], split: str = "test") -> Path:
    """A router stage directory as the router stage writes it: (case_id, gold, ranked) per case."""
    base.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"case_id": [c[0] for c in cases], "gold": [c[1] for c in cases],
                  "ranked": [c[2] for c in cases]}).to_parquet(base / "predictions.parquet", index=False)
    (base / "routing.json").write_text(json.dumps({"target": target, "eval_split": split, "train_cases": 10,
                                                   "multitask": False}), encoding="utf-8")
    return base


def test_routing_gain_by_hand(tmp_path):
    from alignment.stages import routing_gain

    base = write_router(tmp_path / "a", "department", [("c1", "x", ["x", "y"]), ("c2", "y", ["x", "y"]),
                                                      ("c3", "y", ["x", "y"]), ("c4", "x", ["y", "x"])])
    cand = write_router(tmp_path / "b", "department", [("c1", "x", ["x", "y"]), ("c2", "y", ["y", "x"]),
                                                      ("c3", "y", ["y", "x"]), ("c5", "x", ["x", "y"])])
    out = tmp_path / "out"
    out.mkdir()
    metrics = routing_gain.run(routing_gain.Config(top_k=[1, 2], bootstrap_resamples=200),
                               {"baseline": str(base), "candidate": str(cand)}, out, CTX)
    # shared c1..c3: baseline top-1 hits [1, 0, 0], candidate [1, 1, 1]
    assert metrics["shared_cases"] == 3
    assert (metrics["top1_baseline"], metrics["top1_candidate"]) == (pytest.approx(1 / 3), 1.0)
    assert metrics["top1_gain"] == pytest.approx(2 / 3) and metrics["top2_gain"] == 0.0
    report = json.loads((out / "gain.json").read_text())
    assert (report["baseline_only_cases"], report["candidate_only_cases"]) == (1, 1)
    assert routing_gain.accept(routing_gain.Config(), metrics) == []


def test_routing_gain_refuses_routers_of_different_tasks(tmp_path):
    from alignment.stages import routing_gain

    base = write_router(tmp_path / "a", "department", [("c1", "x", ["x"])])
    cand = write_router(tmp_path / "b", "doctor", [("c1", "d1", ["d1"])])
    with pytest.raises(ValueError, match="differ in target"):
        routing_gain.run(routing_gain.Config(), {"baseline": str(base), "candidate": str(cand)}, tmp_path, CTX)
    with pytest.raises(FileNotFoundError, match="not a router stage directory"):
        routing_gain.run(routing_gain.Config(), {"baseline": str(tmp_path), "candidate": str(cand)}, tmp_path, CTX)


PROFILES = {"derm": "皮肤科主任医师，擅长湿疹、荨麻疹，常见问题：皮肤瘙痒、红疹",
            "ortho": "骨科医师，擅长腰椎间盘突出症，常见问题：腰痛、腿麻",
            "eye": "眼科医师，擅长结膜炎，常见问题：眼睛红、分泌物多"}


def test_doctor_rank_baseline_and_trained_by_hand(tmp_path):
    from alignment.stages import doctor_rank

    train = [_case(f"t{d}", "x", "科", d, p) for d, p in PROFILES.items()]
    test = [_case("1", "皮肤瘙痒，起红疹", "皮肤科", "derm", PROFILES["derm"]),
            _case("2", "腰痛，腿麻", "骨科", "ortho", PROFILES["ortho"]),
            _case("3", "眼睛红", "眼科", "derm", PROFILES["derm"]),        # the world sent it elsewhere
            _case("4", "咳嗽", "呼吸科")]                                   # no doctor: not ranked
    data = write_cases(tmp_path / "data", {"train": train, "test": test})
    router = write_router(tmp_path / "router", "doctor", [
        ("src:1#case", "derm", ["ortho", "derm", "eye"]), ("src:2#case", "ortho", ["ortho", "derm", "eye"]),
        ("src:3#case", "derm", ["derm", "eye", "ortho"])])
    out = tmp_path / "out"
    out.mkdir()
    cfg = doctor_rank.Config(top_k=[1, 2], bootstrap_resamples=200)
    metrics = doctor_rank.run(cfg, {"data": str(data), "router": str(router)}, out, CTX)
    assert (metrics["doctors"], metrics["cases"]) == (3, 3)
    # retrieval: case 1 -> derm, case 2 -> ortho, case 3 ("眼睛红") -> eye first, derm not second
    rankings = pd.read_parquet(out / "rankings.parquet")
    assert [list(r)[0] for r in rankings.retrieval] == ["derm", "ortho", "eye"]
    assert metrics["retrieval_top1"] == pytest.approx(2 / 3)
    assert metrics["trained_top1"] == pytest.approx(2 / 3) and metrics["trained_top2"] == 1.0
    report = json.loads((out / "doctor_rank.json").read_text())
    assert report["gain"]["top1"]["gain"] == pytest.approx(0.0)
    assert doctor_rank.accept(cfg, metrics) == []
    # without a router: the baseline alone
    alone = doctor_rank.run(cfg, {"data": str(data)}, out, CTX)
    assert alone["retrieval_top1"] == pytest.approx(2 / 3) and "trained_top1" not in alone


def test_doctor_rank_refuses_a_department_router(tmp_path):
    from alignment.stages import doctor_rank

    data = write_cases(tmp_path / "data", {"test": [_case("1", "痒", "皮肤科", "derm", PROFILES["derm"]),
                                                    _case("2", "腰痛", "骨科", "ortho", PROFILES["ortho"])]})
    router = write_router(tmp_path / "router", "department", [("src:1#case", "皮肤科", ["皮肤科"])])
    with pytest.raises(ValueError, match="needs a router trained with target: doctor"):
        doctor_rank.run(doctor_rank.Config(), {"data": str(data), "router": str(router)}, tmp_path, CTX)


def test_router_reads_only_cases_and_says_what_to_add(tmp_path):
    from alignment.routing.cases import read_rows

    with pytest.raises(FileNotFoundError, match="the recipe must make outputs.cases"):
        read_rows(tmp_path, "train")


def _routing_data(tmp_path) -> Path:
    """Cases of four departments, each told apart by its words (and a first reply per case)."""
    words = {"皮肤科": ["皮肤痒", "起红疹", "脱皮"], "骨科": ["腰痛", "腿麻", "膝盖痛"],
             "眼科": ["眼睛红", "看不清", "眼睛干"], "消化内科": ["胃痛", "拉肚子", "反酸"]}
    rows = {"train": [], "test": []}
    for d, (department, symptoms) in enumerate(words.items()):
        for i in range(12):
            split = "test" if i % 4 == 0 else "train"
            rows[split].append(_case(f"{d}-{i}", f"医生您好，我{symptoms[i % 3]}{i % 5 + 1}天了。", department,
                                     reply=f"建议去{department}看看。"))
    return write_cases(tmp_path / "data", rows)


@pytest.mark.slow
def test_router_alone_and_multitask_train_and_report(tmp_path, tiny_model_dir):
    from alignment.stages import router

    data = _routing_data(tmp_path)
    reports = {}
    for name, weight in (("alone", 0.0), ("multi", 1.0)):
        out = tmp_path / name
        out.mkdir()
        cfg = router.Config(generation_weight=weight, optim={"learning_rate": 3e-3, "max_steps": 25,
                                                             "per_device_batch_size": 8, "warmup_ratio": 0.0},
                            max_length=64, bootstrap_resamples=200, tracking={"tensorboard": False})
        metrics = router.run(cfg, {"data": str(data), "backbone": str(tiny_model_dir)}, out, CTX)
        assert router.accept(cfg, metrics) == []
        assert metrics["routing_loss_end"] < metrics["routing_loss_start"]
        preds = pd.read_parquet(out / "predictions.parquet")
        assert len(preds) == metrics["eval_cases"] == 12 and metrics["train_cases"] == 36
        assert metrics["top1_accuracy"] == pytest.approx(preds["hit@1"].mean())
        report = json.loads((out / "routing.json").read_text())
        assert sorted(report["confusion"]["labels"]) == sorted(report["labels"]) and len(report["labels"]) == 4
        assert sum(map(sum, report["confusion"]["matrix"])) == 12
        reports[name] = metrics
    assert reports["multi"]["multitask"] and "generation_loss_end" in reports["multi"]
    assert reports["multi"]["generation_loss_end"] < reports["multi"]["generation_loss_start"]
    # the saved classifier ranks the labels it was trained on
    from transformers import AutoModelForSequenceClassification

    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "alone" / "model")
    assert set(saved.config.id2label.values()) == {"皮肤科", "骨科", "眼科", "消化内科"}


def test_multitask_shares_one_backbone_and_one_seed_gives_one_head(tiny_model_dir):
    from alignment.models import load_tokenizer
    from alignment.routing.classifier import build_router

    tok = load_tokenizer(str(tiny_model_dir))
    multi = build_router(str(tiny_model_dir), tok, ["a", "b"], multitask=True, seed=3)
    alone = build_router(str(tiny_model_dir), tok, ["a", "b"], multitask=False, seed=3)
    assert multi.lm.model is multi.classifier.model
    assert multi.lm.get_output_embeddings().weight is multi.classifier.model.get_input_embeddings().weight
    assert (multi.classifier.score.weight == alone.classifier.score.weight).all()
    assert len(multi.parameters()) == len(alone.parameters())     # the tied LM head adds nothing


def test_router_with_too_few_cases_is_a_failure(tmp_path, tiny_model_dir):
    from alignment.stages import router

    data = write_cases(tmp_path / "data", {"train": [_case("1", "痒", "皮肤科"), _case("2", "痛", "骨科")],
                                           "test": [_case("3", "痒", "皮肤科")]})
    cfg = router.Config()
    metrics = router.run(cfg, {"data": str(data), "backbone": str(tiny_model_dir)}, tmp_path, CTX)
    assert any("fewer than min_train_cases" in p for p in router.accept(cfg, metrics))


@pytest.mark.slow
def test_policy_routing_asks_and_scores_the_named_department(tmp_path, tiny_sft_model_dir):
    from alignment.stages import policy_routing

    data = _routing_data(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    cfg = policy_routing.Config(sampling={"temperature": 0.0, "max_new_tokens": 16}, bootstrap_resamples=200)
    metrics = policy_routing.run(cfg, {"data": str(data), "policy": str(tiny_sft_model_dir)}, out, CTX)
    gens = pd.read_parquet(out / "generations.parquet")
    assert metrics["cases"] == len(gens) == 12
    assert gens.prompt.str.contains("科").all()                       # the routing question was asked
    assert metrics["accuracy"] == pytest.approx(gens.correct.mean())
    report = json.loads((out / "policy_routing.json").read_text())
    assert report["accuracy"]["n"] == 12 and sum(map(sum, report["confusion"]["matrix"])) <= 12
