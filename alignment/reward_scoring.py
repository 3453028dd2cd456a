"""Scoring (prompt, response) pairs with a reward model, the way the reward_model stage trained it.

    scores = score_responses(rm, tok, prompts, responses, batch_size=16)   # list[float]

Each pair is rendered with the tokenizer's chat template as ONE conversation, history + the
assistant turn, exactly what trl's RewardTrainer tokenizes for conversational preference data, and
the sequence classifier reads its score at the last non-pad token. Rows are right-padded;
``pad_token_id`` in the model config must be the tokenizer's pad token, or the score would be
read at the wrong position (checked).

Also here: the pairwise statistics every consumer needs (accuracy, accuracy by margin bucket,
reward mean and std for normalisation).
"""

from __future__ import annotations

import math

# judge score gap (chosen - rejected) buckets for "accuracy by margin": small gaps are the hard pairs
MARGIN_BUCKETS = ((0.0, 1.0), (1.0, 3.0), (3.0, math.inf))


def render_conversation(tokenizer, prompt: list[dict], response: str) -> str:
    """Chat-template text of ``prompt`` followed by ``response`` as the assistant turn."""
    return tokenizer.apply_chat_template(list(prompt) + [{"role": "assistant", "content": response}],
                                         tokenize=False)


def _check_pad(model, tokenizer) -> None:
    if model.config.num_labels != 1:
        raise ValueError(f"a reward model has 1 label, this one has {model.config.num_labels}")
    if tokenizer.pad_token_id is None or model.config.pad_token_id != tokenizer.pad_token_id:
        raise ValueError(f"reward model pad_token_id={model.config.pad_token_id} but the tokenizer pads with "
                         f"{tokenizer.pad_token_id}: the score would be read at the wrong token")


def encode_right_padded(tokenizer, texts: list[str], max_length: int | None = None):
    """``(input_ids [B, T], attention_mask [B, T])``, right-padded; long texts keep their last tokens."""
    import torch

    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    if max_length is not None:
        ids = [x[-max_length:] for x in ids]
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[row, : len(x)] = 1
    return input_ids, mask


def score_responses(model, tokenizer, prompts: list[list[dict]], responses: list[str], batch_size: int = 16,
                    max_length: int | None = None, progress: bool = False) -> list[float]:
    """Reward of each ``responses[i]`` to ``prompts[i]`` (one float each, in order).

    ``max_length`` keeps the LAST tokens of longer conversations (the response end matters most).
    """
    import torch
    from tqdm.auto import tqdm

    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    _check_pad(model, tokenizer)
    texts = [render_conversation(tokenizer, p, r) for p, r in zip(prompts, responses)]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
    scores = [0.0] * len(texts)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc="scoring", disable=not progress, unit="batch"):
            idx = order[start: start + batch_size]
            input_ids, mask = encode_right_padded(tokenizer, [texts[i] for i in idx], max_length)
            logits = model(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)).logits
            for row, i in enumerate(idx):
                scores[i] = float(logits[row, 0])
    model.train(was_training)
    return scores


def pairwise_accuracy(chosen: list[float], rejected: list[float]) -> float | None:
    """Fraction of pairs where the chosen response scores higher (ties count half)."""
    if not chosen:
        return None
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected))
    return wins / len(chosen)


def accuracy_by_margin(chosen: list[float], rejected: list[float], margins: list[float | None]) -> dict:
    """Pairwise accuracy per judge-margin bucket: ``{"[0,1)": {"n": .., "accuracy": ..}, ...}``."""
    out = {}
    for lo, hi in MARGIN_BUCKETS:
        idx = [i for i, m in enumerate(margins) if m is not None and lo <= m < hi]
        out[f"[{lo:g},{hi:g})"] = {"n": len(idx), "accuracy": pairwise_accuracy(
            [chosen[i] for i in idx], [rejected[i] for i in idx])}
    unknown = [i for i, m in enumerate(margins) if m is None]
    if unknown:
        out["unknown"] = {"n": len(unknown), "accuracy": pairwise_accuracy(
            [chosen[i] for i in unknown], [rejected[i] for i in unknown])}
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation."""
    if not values:
        raise ValueError("mean_std of no values")
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
