"""Stage ``rsft``: rejection-sampling fine-tuning (ChiMed-GPT's alternative to PPO).

Each iteration: draw prompts from ``prompts/<split>``, sample ``k`` responses per prompt from the
current policy, score them with the reward model, keep the ``keep_top`` best per prompt whose
score reaches ``min_score``, and fine-tune the policy on them (assistant-only SFT). The next
iteration samples from the fine-tuned policy. After the last iteration the final policy is
sampled once more, so ``mean_score_by_iteration`` has iterations + 1 entries: the mean RM score
of the samples of the input policy, then of each fine-tuned policy. It should rise.

Inputs: ``data``, ``policy``, ``reward_model``. Outputs: ``out/model`` (the final policy),
``out/metrics.jsonl`` (one line per iteration), ``out/iterations/<i>/kept.parquet``. Runs in
one process: the sampling, not the small fine-tuning, dominates and is not sharded.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from pydantic import Field

from alignment.generation import SamplingSpec
from alignment.models import DType
from alignment.scope import TrainableScope
from alignment.stages.inputs import Quarantine, load_prompt_split
from alignment.stages.training_args import OptimSpec
from medalign.config import StrictModel
from medalign.stage import StageContext

NAME = "rsft"


class RSFTTrainSpec(StrictModel):
    """The fine-tuning step of each iteration. Defaults follow ChiMed-GPT's RSFT."""

    optim: OptimSpec = Field(default_factory=lambda: OptimSpec(
        learning_rate=1e-5, epochs=1, per_device_batch_size=8, adam_beta2=0.95, adam_epsilon=1e-5,
        weight_decay=0.1))                       # ChiMed-GPT: AdamW (0.9, 0.95, eps 1e-5), lr 1e-5, wd 0.1
    scope: TrainableScope = Field(default_factory=TrainableScope)  # full / lora / last_n_layers
    max_length: int = Field(1024, ge=16)         # tokens per example
    packing: bool = False                        # pack kept examples into max_length rows
    assistant_only_loss: bool = True             # learn only the kept responses
    seed: int | None = None                      # None: the job seed


class RSFTStageConfig(StrictModel):
    """Rejection sampling: how many prompts and samples, what to keep, how to fine-tune."""

    iterations: int = Field(3, ge=1)                       # sample -> score -> keep -> fine-tune rounds
    split: str = "train"                                   # prompts/<split>.parquet to draw from
    prompts_per_iteration: int = Field(256, ge=1)          # prompts drawn (without replacement) per round
    k: int = Field(4, ge=2)                                # samples per prompt
    keep_top: int = Field(1, ge=1)                         # best samples kept per prompt
    min_score: float | None = None                         # kept samples must reach this RM score (None: any)
    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(temperature=1.0, top_p=0.95))  # decoding
    train: RSFTTrainSpec = Field(default_factory=RSFTTrainSpec)  # the fine-tuning step
    reward_batch_size: int = Field(32, ge=1)               # batch size when scoring with the RM
    reward_max_length: int = Field(1024, ge=16)            # RM input tokens (longer keep their end)
    dtype: DType = "auto"                                  # sampling/scoring dtype
    seed: int | None = None                                # None: the job seed


Config = RSFTStageConfig


def select_top(prompts: list[dict], responses: list[list[str]], scores: list[list[float]], keep_top: int,
               min_score: float | None) -> list[dict]:
    """The ``keep_top`` best non-empty responses of each prompt scoring >= ``min_score``, as SFT rows."""
    rows = []
    for prompt, resp, sc in zip(prompts, responses, scores):
        ranked = sorted(zip(sc, resp), key=lambda x: -x[0])
        kept = [(s, r) for s, r in ranked if r.strip() and (min_score is None or s >= min_score)][:keep_top]
        for s, r in kept:
            rows.append({"prompt_id": prompt["prompt_id"], "score": s,
                         "messages": prompt["messages"] + [{"role": "assistant", "content": r}]})
    return rows


def _sample_and_score(policy_ref: str, rm, rm_tok, prompts: list[dict], cfg: RSFTStageConfig, seed: int,
                      ctx: StageContext) -> tuple[list[list[str]], list[list[float]]]:
    from alignment.reward_scoring import score_responses
    from alignment.stages.sample import generate_from_checkpoint

    gens = generate_from_checkpoint(policy_ref, "policy", prompts, cfg.sampling, cfg.k, seed, cfg.dtype, ctx)
    responses = [[g.text for g in row] for row in gens]
    flat_prompts = [p["messages"] for p, row in zip(prompts, responses) for _ in row]
    flat = score_responses(rm, rm_tok, flat_prompts, [r for row in responses for r in row],
                           cfg.reward_batch_size, cfg.reward_max_length, ctx.progress)
    scores = [flat[i * cfg.k:(i + 1) * cfg.k] for i in range(len(prompts))]
    return responses, scores


def run(cfg: RSFTStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    import pandas as pd

    from alignment.models import load_reward_model, load_tokenizer
    from alignment.stages.sft import train_sft

    out = Path(out)
    quarantine = Quarantine()
    pool = load_prompt_split(inputs["data"], cfg.split, quarantine, None, NAME)
    rm_tok = load_tokenizer(inputs["reward_model"], "reward_model")
    rm = load_reward_model(inputs["reward_model"], device=ctx.device, dtype=cfg.dtype)
    seed = ctx.seed if cfg.seed is None else cfg.seed
    rng = random.Random(seed)
    policy, history = inputs["policy"], []
    (out / "metrics.jsonl").unlink(missing_ok=True)
    for it in range(cfg.iterations + 1):
        prompts = rng.sample(pool, min(cfg.prompts_per_iteration, len(pool)))
        responses, scores = _sample_and_score(policy, rm, rm_tok, prompts, cfg, seed + 1000 * it, ctx)
        flat = [s for row in scores for s in row]
        record = {"iteration": it, "policy": policy, "prompts": len(prompts), "samples": len(flat),
                  "mean_score": sum(flat) / len(flat), "best_of_k_mean": sum(max(r) for r in scores) / len(scores)}
        if it < cfg.iterations:
            kept = select_top(prompts, responses, scores, cfg.keep_top, cfg.min_score)
            it_dir = out / "iterations" / str(it)
            it_dir.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(kept).to_parquet(it_dir / "kept.parquet", index=False)
            record["kept"] = len(kept)
            if kept:
                sft = train_sft(policy, [{"messages": r["messages"]} for r in kept], [], cfg.train, it_dir, ctx)
                record.update(train_loss_start=sft["train_loss_start"], train_loss_end=sft["train_loss_end"])
                policy = str(it_dir / "model")
            else:
                ctx.logger.warning("rsft iteration %d: no sample reached min_score=%s; policy unchanged",
                                   it, cfg.min_score)
        history.append(record)
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        ctx.logger.info("rsft iteration %d: mean RM score %.4f (kept %s)", it, record["mean_score"],
                        record.get("kept", "-"))
    _copy_model(Path(policy), out / "model")
    quarantine.write(out)
    means = [h["mean_score"] for h in history]
    return {"mean_score_by_iteration": means, "mean_score_start": means[0], "mean_score_end": means[-1],
            "kept_by_iteration": [h.get("kept") for h in history[:-1]], "quarantined": len(quarantine)}


def _copy_model(src: Path, dst: Path) -> None:
    """The final policy into ``out/model`` (a hub id, when no iteration kept anything, is saved)."""
    if dst.exists():
        shutil.rmtree(dst)
    if src.is_dir():
        shutil.copytree(src, dst)
        return
    from alignment.models import load_causal_lm, load_tokenizer

    load_causal_lm(str(src), "policy").save_pretrained(dst)
    load_tokenizer(str(src), "policy").save_pretrained(dst)
