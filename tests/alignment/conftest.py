"""Tiny models and data for alignment tests (shared with the PPO tests).

Everything is built once per test session in a temporary directory, offline, on CPU, seeded:

* ``tiny_texts``: a small zh/en medical-ish text corpus (list[str]).
* ``tiny_chat_dataset``: conversations, a list of ``{"messages": [...]}`` (user/assistant turns).
* ``tiny_model_dir``: byte-level BPE tokenizer + untrained tiny Qwen2 causal LM (HF checkpoint).
* ``tiny_sft_model_dir``: the same model after a few dozen SFT steps (assistant-only loss).
* ``tiny_reward_model_dir``: ``Qwen2ForSequenceClassification`` (num_labels=1, pad_token_id set)
  whose backbone is the SFT model; its score head is untrained.
* ``tiny_trained_reward_model_dir``: a reward model trained (30 steps, reward_model stage) on
  ``tiny_pairs_dir``: doctor-style answers score about +3, vague / distilled ones about -3.
  ``reward_stats.json`` (mean, std, held-out settings) sits beside it, as the stage writes it.
* ``tiny_data_dir``: a directory shaped like the data stage's output (CONTRACTS.md columns):
  ``sft/``, ``prompts/``, ``preferences/``, ``ranked/``, ``pretrain/`` with train/validation/test.
* ``tiny_pairs_dir``: a directory shaped like the judge stage's output (``pairs.parquet``) where
  the chosen answer is always the doctor-like style and the rejected one a vague style.

The corpus has three answer styles per condition (see :func:`_answers`): ``doctor`` (names the
likely condition, the department and asks a follow-up question), ``distilled`` (long, polite,
hedged) and ``vague`` (short and unhelpful). Doctor-style beats vague in every preference pair.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

# key, zh name, en name, zh department, en department, zh symptom, en symptom, zh question, en question
_CONDITIONS = [
    ("migraine", "偏头痛", "migraine", "神经内科", "neurology", "头痛，一侧跳痛", "a throbbing headache on one side",
     "请问头痛时有没有恶心或怕光？", "Do you feel sick or sensitive to light during the headache?"),
    ("gastritis", "胃炎", "gastritis", "消化内科", "gastroenterology", "胃痛，饭后胀", "stomach pain and bloating after meals",
     "请问有没有黑便或呕血？", "Have you noticed black stools or vomited blood?"),
    ("asthma", "哮喘", "asthma", "呼吸内科", "respiratory medicine", "喘息，夜里咳嗽", "wheezing and a cough at night",
     "请问以前有没有过敏史？", "Do you have any allergies?"),
    ("eczema", "湿疹", "eczema", "皮肤科", "dermatology", "皮肤发痒，起红疹", "an itchy red rash",
     "请问皮疹多久了，用过什么药膏？", "How long have you had the rash, and what creams have you used?"),
    ("uti", "尿路感染", "urinary tract infection", "泌尿外科", "urology", "尿频，尿痛", "burning when passing urine",
     "请问有没有发烧或腰痛？", "Do you have a fever or pain in your back?"),
    ("otitis", "中耳炎", "otitis media", "耳鼻喉科", "ENT", "耳朵痛，听力下降", "ear pain and muffled hearing",
     "请问耳朵有没有流脓？", "Is there any discharge from the ear?"),
    ("hypertension", "高血压", "hypertension", "心内科", "cardiology", "头晕，血压偏高", "dizziness and high blood pressure readings",
     "请问平时血压多少，有没有胸闷？", "What are your usual readings, and any chest tightness?"),
    ("conjunctivitis", "结膜炎", "conjunctivitis", "眼科", "ophthalmology", "眼睛红，有分泌物", "a red eye with discharge",
     "请问视力有没有变化？", "Has your vision changed at all?"),
]
_ONSET_ZH = ["三天前开始", "一周了", "两天来", "半个月了"]
_ONSET_EN = ["for three days", "for a week", "since two days ago", "for two weeks"]


def _question(cond, lang: str, onset: int) -> str:
    _, zh, en, dzh, den, szh, sen, qzh, qen = cond
    if lang == "zh":
        return f"医生您好，我{_ONSET_ZH[onset]}{szh}，该怎么办？"
    return f"Hello doctor, I have had {sen} {_ONSET_EN[onset]}. What should I do?"


def _answers(cond, lang: str) -> dict[str, str]:
    _, zh, en, dzh, den, szh, sen, qzh, qen = cond
    if lang == "zh":
        return {
            "doctor": f"考虑{zh}，建议去{dzh}就诊。{qzh}",
            "distilled": f"您好！{szh}可能由多种原因引起，例如{zh}等。建议您注意休息，保持良好的生活习惯，"
                         f"如果症状持续或加重，请及时到医院就诊，必要时可以咨询{dzh}医生。祝您早日康复！",
            "vague": "多喝水，注意休息。",
        }
    return {
        "doctor": f"This sounds like {en}; please see {den}. {qen}",
        "distilled": f"Thank you for your question! {sen.capitalize()} can have many causes, such as {en}. "
                     f"Rest well and keep healthy habits. If the symptoms persist, please seek medical care; "
                     f"a {den} specialist can help. Wishing you a quick recovery!",
        "vague": "Drink water and rest.",
    }


def _conversations(n: int, seed: int) -> list[dict]:
    """n single- or two-turn consultations with ids, mixing doctor and distilled styles."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        cond = _CONDITIONS[i % len(_CONDITIONS)]
        lang = "zh" if (i // len(_CONDITIONS)) % 2 == 0 else "en"
        onset = rng.randrange(len(_ONSET_ZH))
        style = "doctor" if rng.random() < 0.6 else "distilled"
        messages = [{"role": "user", "content": _question(cond, lang, onset)},
                    {"role": "assistant", "content": _answers(cond, lang)[style]}]
        if rng.random() < 0.3:
            follow = "没有。" if lang == "zh" else "No."
            last = (f"好的，那先按{cond[1]}处理，按时复诊。" if lang == "zh"
                    else f"Then we treat it as {cond[2]} for now; come back if it gets worse.")
            messages += [{"role": "user", "content": follow}, {"role": "assistant", "content": last}]
        rows.append({"id": f"c{i:04d}", "consultation_id": f"c{i:04d}", "messages": messages,
                     "origin": "real_doctor" if style == "doctor" else "distilled",
                     "source": "tiny", "language": lang, "condition": cond[0], "onset": onset})
    return rows


def _texts(conversations: list[dict]) -> list[str]:
    texts = [t["content"] for row in conversations for t in row["messages"]]
    for cond in _CONDITIONS:
        for lang in ("zh", "en"):
            texts.extend(_answers(cond, lang).values())
    return texts


@pytest.fixture(scope="session")
def tiny_conversations() -> list[dict]:
    """160 consultations as SFT rows (CONTRACTS ``sft/`` columns plus ``condition``, ``onset``)."""
    return _conversations(160, seed=0)


@pytest.fixture(scope="session")
def tiny_texts(tiny_conversations) -> list[str]:
    return _texts(tiny_conversations)


@pytest.fixture(scope="session")
def tiny_chat_dataset(tiny_conversations) -> list[dict]:
    """Conversations as ``[{"messages": [...]}, ...]`` (160 rows)."""
    return [{"messages": row["messages"]} for row in tiny_conversations]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_texts) -> Path:
    from alignment.bootstrap import ModelSpec, TokenizerSpec, bootstrap

    out = tmp_path_factory.mktemp("tiny_model") / "model"
    bootstrap(tiny_texts, out, TokenizerSpec(vocab_size=1024), ModelSpec(), seed=0)
    return out


def _sft_steps(model, tokenizer, conversations: list[list[dict]], steps: int, batch: int, lr: float):
    """A plain assistant-only SFT loop (AdamW), enough to make the tiny model speak the corpus."""
    import torch

    from alignment.chat import assistant_spans

    encoded = [assistant_spans(tokenizer, msgs) for msgs in conversations]
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(encoded), (batch,), generator=gen).tolist()
        width = max(len(encoded[i][0]) for i in idx)
        ids = torch.full((batch, width), tokenizer.pad_token_id)
        labels = torch.full((batch, width), -100)
        attn = torch.zeros((batch, width), dtype=torch.long)
        for row, i in enumerate(idx):
            toks, mask = encoded[i]
            ids[row, : len(toks)] = torch.tensor(toks)
            attn[row, : len(toks)] = 1
            labels[row, : len(toks)] = torch.tensor([t if m else -100 for t, m in zip(toks, mask)])
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return loss.item()


@pytest.fixture(scope="session")
def tiny_sft_model_dir(tmp_path_factory, tiny_model_dir, tiny_chat_dataset) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    _sft_steps(model, tokenizer, [r["messages"] for r in tiny_chat_dataset], steps=60, batch=8, lr=3e-3)
    out = tmp_path_factory.mktemp("tiny_sft") / "model"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_reward_model_dir(tmp_path_factory, tiny_sft_model_dir) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_sft_model_dir)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_sft_model_dir, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    out = tmp_path_factory.mktemp("tiny_rm") / "model"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _prompt_rows(conversations: list[dict]) -> list[dict]:
    rows = []
    for row in conversations:
        cond = next(c for c in _CONDITIONS if c[0] == row["condition"])
        rows.append({"prompt_id": f"p-{row['id']}", "consultation_id": row["consultation_id"],
                     "messages": row["messages"][:1], "reference": _answers(cond, row["language"])["doctor"],
                     "origin": row["origin"], "source": "tiny", "language": row["language"],
                     "department": cond[4], "provenance": json.dumps({"tiny": row["id"]})})
    return rows


def _preference_rows(prompts: list[dict], conversations: list[dict]) -> tuple[list[dict], list[dict]]:
    prefs, ranked = [], []
    for prompt, row in zip(prompts, conversations):
        cond = next(c for c in _CONDITIONS if c[0] == row["condition"])
        ans = _answers(cond, row["language"])
        common = {"prompt_id": prompt["prompt_id"], "messages": prompt["messages"], "source": "tiny",
                  "provenance": prompt["provenance"]}
        prefs.append({**common, "chosen": ans["doctor"], "rejected": ans["vague"], "margin": 3.0})
        ranked.append({**common, "responses": [ans["doctor"], ans["distilled"], ans["vague"]],
                       "ranks": [0, 1, 2], "response_sources": ["doctor", "distilled", "vague"]})
    return prefs, ranked


def _write_splits(base: Path, name: str, rows: list[dict], splits: dict[str, list[int]]) -> None:
    import pandas as pd

    (base / name).mkdir(parents=True, exist_ok=True)
    for split, idx in splits.items():
        pd.DataFrame([rows[i] for i in idx]).to_parquet(base / name / f"{split}.parquet", index=False)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory, tiny_conversations) -> Path:
    """A data-stage-like directory: 80% train, 10% validation, 10% test by consultation."""
    base = tmp_path_factory.mktemp("tiny_data")
    n = len(tiny_conversations)
    splits = {"train": list(range(0, int(n * 0.8))), "validation": list(range(int(n * 0.8), int(n * 0.9))),
              "test": list(range(int(n * 0.9), n))}
    sft = [{k: r[k] for k in ("id", "consultation_id", "messages", "origin", "source", "language")}
           | {"provenance": json.dumps({"tiny": r["id"]})} for r in tiny_conversations]
    prompts = _prompt_rows(tiny_conversations)
    prefs, ranked = _preference_rows(prompts, tiny_conversations)
    pretrain = [{"id": f"t{i}", "text": text, "source": "tiny", "provenance": "{}"}
                for i, text in enumerate(_texts(tiny_conversations))]
    for name, rows in (("sft", sft), ("prompts", prompts), ("preferences", prefs), ("ranked", ranked)):
        _write_splits(base, name, rows, splits)
    m = len(pretrain)
    _write_splits(base, "pretrain", pretrain, {"train": list(range(int(m * 0.9))),
                                                "validation": list(range(int(m * 0.9), m))})
    return base


@pytest.fixture(scope="session")
def tiny_pairs_dir(tmp_path_factory, tiny_conversations) -> Path:
    """A judge-stage-like directory with ``pairs.parquet`` (doctor style chosen over vague/distilled)."""
    import pandas as pd

    base = tmp_path_factory.mktemp("tiny_pairs")
    prompts = _prompt_rows(tiny_conversations)
    rows = []
    for prompt, conv in zip(prompts, tiny_conversations):
        cond = next(c for c in _CONDITIONS if c[0] == conv["condition"])
        ans = _answers(cond, conv["language"])
        for rejected, scores in (("vague", (8.0, 2.0)), ("distilled", (8.0, 6.5))):
            rows.append({"prompt_id": prompt["prompt_id"], "messages": prompt["messages"],
                         "chosen": ans["doctor"], "rejected": ans[rejected], "chosen_score": scores[0],
                         "rejected_score": scores[1], "margin": scores[0] - scores[1]})
    pd.DataFrame(rows).to_parquet(base / "pairs.parquet", index=False)
    return base


@pytest.fixture(scope="session")
def tiny_trained_reward_model_dir(tmp_path_factory, tiny_pairs_dir, tiny_sft_model_dir) -> Path:
    from alignment.stages import reward_model
    from medalign.stage import StageContext

    out = tmp_path_factory.mktemp("tiny_trained_rm")
    cfg = reward_model.Config(optim={"learning_rate": 1e-3, "max_steps": 30, "per_device_batch_size": 8,
                                     "lr_scheduler": "constant", "warmup_ratio": 0.0},
                              heldout_fraction=0.2, max_length=256, stats_samples=64)
    reward_model.run(cfg, {"pairs": str(tiny_pairs_dir), "backbone": str(tiny_sft_model_dir)}, out,
                     StageContext(seed=0, progress=False))
    return out / "model"
