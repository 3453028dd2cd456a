"""Stage ``rsft``: rejection-sampling fine-tuning (ChiMed-GPT's alternative to PPO).

Each iteration: draw prompts from ``prompts/<split>``, sample ``k`` responses per prompt from the
current policy, score them (``scorer``: the reward model, or a judge comparing the k samples of a
prompt pairwise in both orders, see :mod:`alignment.stages.rsft_scoring`), keep the ``keep_top``
best per prompt whose score reaches ``min_score``, and fine-tune the policy on them
(assistant-only SFT). The next iteration samples from the fine-tuned policy. After the last
iteration the final policy is sampled once more, so ``mean_score_by_iteration`` has
iterations + 1 entries: the mean score of the samples of the input policy, then of each
fine-tuned policy. It should rise. Samples a judge could not score (no ok judgment) are counted
and never kept.

Inputs: ``data``, ``policy``, ``reward_model`` (only for ``scorer: reward_model``). Outputs:
``out/model`` (the final policy), ``out/metrics.jsonl`` (one line per iteration),
``out/iterations/<i>/kept.parquet``, and with a judge ``out/iterations/<i>/judge/``
(``transcripts.jsonl``, cache).

Distributed (``resources.num_workers: 2`` on Ray Train, or ``distributed.nproc: 2`` with torchrun):
each rank samples its share of the iteration's prompts (and scores it with the reward model; a
judge scores all samples on rank 0, so there is one transcript), the samples are gathered in
prompt order on every rank, and the fine-tuning runs data parallel (``distributed.deepspeed`` for
ZeRO). Rank 0 writes the outputs. Rank r > 0 samples with its own seed, so the samples (not their
distribution) differ from a one-process run's.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from alignment.distributed import (DistributedSpec, barrier, broadcast_from_main, gather_shards, is_main_process,
                                   maybe_launch, my_shard, rank)
from alignment.generation import SamplingSpec
from alignment.generation_backends import GenerationSpec
from alignment.models import DType
from alignment.scope import TrainableScope
from alignment.specs import MaxLength, RewardScoringSpec
from alignment.stages.inputs import Quarantine, load_prompt_split
from alignment.stages.rsft_scoring import RSFTJudgeSpec, score_with_judge, score_with_reward_model
from alignment.stages.training_args import OptimSpec
from alignment.tracking import Tracker, TrackingSpec, check_tracking, start_tracking
from medalign.config import StrictModel
from medalign.stage import Input, StageContext

NAME = "rsft"
INPUTS = {"data": Input(("data",), "data stage directory (prompts/)", reads=("prompts",)),
          "policy": Input(("sft",), "checkpoint to sample from and fine-tune", model=True),
          "reward_model": Input(("reward_model",), "reward model checkpoint (scorer: reward_model only)",
                                model=True, optional=True)}


class RSFTTrainSpec(StrictModel):
    """The fine-tuning step of each iteration. Defaults follow ChiMed-GPT's RSFT."""

    optim: OptimSpec = Field(default_factory=lambda: OptimSpec(
        learning_rate=1e-5, epochs=1, per_device_batch_size=8, adam_beta2=0.95, adam_epsilon=1e-5,
        weight_decay=0.1))                       # ChiMed-GPT: AdamW (0.9, 0.95, eps 1e-5), lr 1e-5, wd 0.1
    scope: TrainableScope = Field(default_factory=TrainableScope)  # full / lora / last_n_layers
    max_length: MaxLength = 1024                 # tokens per example, longer ones are cut
    packing: bool = False                        # pack kept examples into max_length rows
    assistant_only_loss: bool = True             # learn only the kept responses
    seed: int | None = None                      # None: the job seed


class RSFTStageConfig(StrictModel):
    """Rejection sampling: how many prompts and samples, what to keep, how to fine-tune."""

    renamed = {"reward_batch_size": "reward.score_batch_size", "reward_max_length": "reward.max_length"}

    iterations: int = Field(3, ge=1)                       # sample -> score -> keep -> fine-tune rounds
    split: str = "train"                                   # prompts/<split>.parquet to draw from
    prompts_per_iteration: int = Field(256, ge=1)          # prompts drawn (without replacement) per round
    k: int = Field(4, ge=2)                                # samples per prompt
    keep_top: int = Field(1, ge=1)                         # best samples kept per prompt
    min_score: float | None = None                         # kept samples must reach this score (None: any)
    scorer: Literal["reward_model", "judge"] = "reward_model"  # who scores the samples (ChiMed-GPT: the RM)
    judging: RSFTJudgeSpec = Field(default_factory=RSFTJudgeSpec)  # scorer=judge: judge, pairing
    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(temperature=1.0, top_p=0.95))  # decoding
    generation: GenerationSpec = Field(default_factory=GenerationSpec)  # where: in_process, endpoint (needs launch), ray_actors

    @model_validator(mode="after")
    def _endpoint_follows_the_policy(self) -> "RSFTStageConfig":
        g = self.generation
        if g.backend == "endpoint" and not g.endpoint.launch:
            raise ValueError("generation.endpoint: rsft samples a new checkpoint every iteration, which a "
                             "running server at base_url does not serve; give endpoint.launch (a command "
                             "medalign starts per checkpoint, e.g. [vllm, serve, '{model}', --port, '{port}']) "
                             "or use backend in_process / ray_actors")
        return self
    train: RSFTTrainSpec = Field(default_factory=RSFTTrainSpec)  # the fine-tuning step
    reward: RewardScoringSpec = Field(default_factory=RewardScoringSpec)  # scorer=reward_model: batch, input cap
    dtype: DType = "auto"                                  # sampling/scoring dtype
    seed: int | None = None                                # None: the job seed
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)  # processes / DeepSpeed (the fine-tuning)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)  # TensorBoard (out/tensorboard) / W&B


Config = RSFTStageConfig


def select_top(prompts: list[dict], responses: list[list[str]], scores: list[list[float | None]], keep_top: int,
               min_score: float | None) -> list[dict]:
    """The ``keep_top`` best non-empty responses of each prompt scoring >= ``min_score``, as SFT rows.

    A response without a score (None: the judge never judged it ok) is never kept.
    """
    rows = []
    for prompt, resp, sc in zip(prompts, responses, scores):
        scored = [(s, r) for s, r in zip(sc, resp) if s is not None]
        ranked = sorted(scored, key=lambda x: -x[0])
        kept = [(s, r) for s, r in ranked if r.strip() and (min_score is None or s >= min_score)][:keep_top]
        for s, r in kept:
            rows.append({"prompt_id": prompt["prompt_id"], "score": s,
                         "messages": prompt["messages"] + [{"role": "assistant", "content": r}]})
    return rows


def _scorer(cfg: RSFTStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext):
    """``score(prompts, responses, iteration) -> (scores, counts)`` for the configured scorer,
    called by every rank with its share of the samples; the judge scores all of them on rank 0."""
    if cfg.scorer == "judge":
        if inputs.get("reward_model"):
            ctx.logger.info("rsft: scorer=judge, so the reward_model input %s is not used", inputs["reward_model"])

        def judge_on_main(prompts, responses, it):
            prompts, responses = gather_shards(prompts), gather_shards(responses)
            result = score_with_judge(prompts, responses, cfg.judging, out / "iterations" / str(it) / "judge",
                                      ctx.progress) if is_main_process() else None
            scores, counts = broadcast_from_main(result)
            return my_shard(scores), counts if is_main_process() else _zero_counts(counts)
        return judge_on_main
    from alignment.models import load_reward_model, load_tokenizer

    if not inputs.get("reward_model"):
        raise ValueError("rsft: scorer=reward_model needs the input 'reward_model' (or set scorer: judge)")
    rm_tok = load_tokenizer(inputs["reward_model"], "reward_model")
    rm = load_reward_model(inputs["reward_model"], device=ctx.device, dtype=cfg.dtype)
    return lambda prompts, responses, it: score_with_reward_model(
        rm, rm_tok, prompts, responses, cfg.reward.score_batch_size, cfg.reward.max_length, ctx.progress)


def _zero_counts(counts: dict) -> dict:
    """``counts`` with every number 0 (a rank whose share was counted on rank 0)."""
    return {k: _zero_counts(v) if isinstance(v, dict) else 0 for k, v in counts.items()}


def _sample_and_score(cfg: RSFTStageConfig, policy: str, prompts: list[dict], score, it: int, seed: int,
                      ctx: StageContext, gen_info: dict, work_dir: Path
                      ) -> tuple[list[list[str]], list[list[float | None]], dict]:
    """Responses and scores of every prompt (in order) and the counts, each rank doing its share.
    ``gen_info`` receives what the generation backend reports (its name, seeds' meaning)."""
    from alignment.stages.sample import generate_from_checkpoint

    mine = my_shard(prompts)
    # rank 0 keeps the one-process seed; other ranks draw their own samples
    gens = generate_from_checkpoint(policy, "policy", mine, cfg.sampling, cfg.k,
                                    seed + 1000 * it + 1_000_000 * rank(), cfg.dtype, ctx,
                                    cfg.generation, work_dir, gen_info)
    responses = [[g.text for g in row] for row in gens]
    scores, counts = score(mine, responses, it)
    return gather_shards(responses), gather_shards(scores), _sum_counts(gather_shards([counts]))


def _iteration_record(it: int, policy: str, prompts: list[dict], scores: list[list[float | None]],
                      counts: dict) -> dict:
    """Mean score of the scored samples, and the mean over prompts of their best sample."""
    flat = [s for row in scores for s in row if s is not None]
    best = [max(s for s in row if s is not None) for row in scores if any(s is not None for s in row)]
    return {"iteration": it, "policy": policy, "prompts": len(prompts), "samples": sum(len(r) for r in scores),
            "mean_score": sum(flat) / len(flat) if flat else None,
            "best_of_k_mean": sum(best) / len(best) if best else None, **counts}


def _iterate(cfg: RSFTStageConfig, pool: list[dict], score, out: Path, ctx: StageContext, seed: int,
             tracker: Tracker, policy: str) -> tuple[str, list[dict]]:
    """The sample -> score -> keep -> fine-tune rounds; return the final policy and one record per round.

    Each round's record goes to ``out/metrics.jsonl`` and, as ``rsft/*`` scalars at step = round,
    to the tracker; each fine-tuning logs under ``out/tensorboard/iteration_<i>/``.
    """
    import pandas as pd

    from alignment.stages.sft import train_sft

    rng = random.Random(seed)
    history = []
    if is_main_process():
        (out / "metrics.jsonl").unlink(missing_ok=True)
    for it in range(cfg.iterations + 1):
        prompts = rng.sample(pool, min(cfg.prompts_per_iteration, len(pool)))
        gen_info: dict = {}
        responses, scores, counts = _sample_and_score(cfg, policy, prompts, score, it, seed, ctx, gen_info,
                                                      out / "iterations" / str(it))
        record = _iteration_record(it, policy, prompts, scores, counts)
        record["generation_backend"] = gen_info.get("backend")
        if it < cfg.iterations:
            kept = select_top(prompts, responses, scores, cfg.keep_top, cfg.min_score)
            it_dir = out / "iterations" / str(it)
            it_dir.mkdir(parents=True, exist_ok=True)
            if is_main_process():
                pd.DataFrame(kept).to_parquet(it_dir / "kept.parquet", index=False)
            record["kept"] = len(kept)
            if kept:
                sft = train_sft(policy, [{"messages": r["messages"]} for r in kept], [], cfg.train, it_dir, ctx,
                                tracker=tracker, tb_subdir=f"iteration_{it}", distributed=cfg.distributed)
                barrier()       # rank 0 has saved the model every rank samples from next
                record.update(train_loss_start=sft["train_loss_start"], train_loss_end=sft["train_loss_end"])
                policy = str(it_dir / "model")
            else:
                ctx.logger.warning("rsft iteration %d: no scored sample reached min_score=%s; policy unchanged",
                                   it, cfg.min_score)
        history.append(record)
        tracker.log({f"rsft/{k}": record.get(k) for k in ("mean_score", "best_of_k_mean", "kept")}, step=it)
        if is_main_process():
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        ctx.logger.info("rsft iteration %d: mean %s score %s (kept %s)", it, cfg.scorer, record["mean_score"],
                        record.get("kept", "-"))
    return policy, history


def run(cfg: RSFTStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    out = Path(out)
    check_tracking(cfg.tracking, out)
    launched = maybe_launch(NAME, cfg, inputs, out, ctx)     # distributed.nproc > 1: torchrun
    if launched is not None:
        return launched
    from alignment.rl.parallel import init_distributed

    init_distributed()      # a torchrun rank joins its group before the first gather (Ray Train's has)
    quarantine = Quarantine()
    pool = load_prompt_split(inputs["data"], cfg.split, quarantine, None, NAME)
    score = _scorer(cfg, inputs, out, ctx)
    seed = ctx.seed if cfg.seed is None else cfg.seed
    with start_tracking(cfg.tracking, out, config=cfg) as tracker:
        policy, history = _iterate(cfg, pool, score, out, ctx, seed, tracker, inputs["policy"])
    if is_main_process():
        _copy_model(Path(policy), out / "model")
        quarantine.write(out)
    barrier()
    means = [h["mean_score"] for h in history]
    return {"scorer": cfg.scorer, "mean_score_by_iteration": means, "mean_score_start": means[0],
            "mean_score_end": means[-1], "kept_by_iteration": [h.get("kept") for h in history[:-1]],
            "unscored_samples": sum(h["unscored_samples"] for h in history),
            "judgments_not_ok": _sum_counts(h.get("judgments_not_ok", {}) for h in history)
            if cfg.scorer == "judge" else None,
            "quarantined": len(quarantine), "generation_backend": cfg.generation.backend}


def _sum_counts(dicts) -> dict:
    """Counts added up key by key (nested dicts too: judge statuses)."""
    total: dict = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = _sum_counts([total.get(k, {}), v]) if isinstance(v, dict) else total.get(k, 0) + v
    return total


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
