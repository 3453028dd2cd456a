"""What each stage kind puts on a GPU and how much arithmetic a step is: the job side of the plan.

:func:`stage_workload` turns a planned stage (its validated config), the shapes of its models and
the data-parallel world size into phases (:class:`alignment.capacity.memory.Phase`: resident models
plus what a phase adds) and the work of one step. It follows what the stage code does on a GPU:

- trl stages (pretrain, sft, reward_model, dpo, online_rl) load fp32 weights and train in bf16
  mixed precision (``optim.dtype: auto``); DeepSpeed runs them in 16 bit with fp32 master weights.
- ppo (alignment/rl/setup.py) loads policy, reference, critic and reward model in fp32 and turns
  DeepSpeed's bf16 off; policy and critic are DeepSpeed engines, reference and reward model plain
  copies on every GPU.
- sample, eval and rsft generate in one process (``dtype: auto`` = bf16), with the KV cache.
- No trainer of this repo turns gradient checkpointing on; the plan shows its effect separately.

The stage config fields the planner reads are read in the accessors just below, in one place, so
that a renamed field is adapted here only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from alignment.capacity.memory import (ModelOnGpu, Phase, Zero, kv_cache_bytes, logits_bytes,
                                       prefill_working_bytes, training_activation_bytes)
from alignment.capacity.shapes import ModelShape, backward_layers
from alignment.capacity.throughput import (forward_flops_per_token, generation_seconds, seconds_at_mfu,
                                           training_flops_per_token)

# ---------------------------------------------------------------------------------------------
# Stage config fields the planner reads (adapt here when a field is renamed)
# ---------------------------------------------------------------------------------------------


def _train_block(cfg):
    """The block holding optim / scope / max_length: rsft nests it under ``train``."""
    return getattr(cfg, "train", None) or cfg


def optim_of(cfg):
    return _train_block(cfg).optim


def scope_of(cfg):
    return _train_block(cfg).scope


def max_length_of(cfg) -> int:
    return int(_train_block(cfg).max_length)


def deepspeed_of(cfg) -> str:
    return getattr(getattr(cfg, "distributed", None), "deepspeed", "none")


def nproc_of(cfg) -> int:
    return int(getattr(getattr(cfg, "distributed", None), "nproc", 1))


def checkpointing_of(cfg) -> bool:
    return bool(getattr(cfg, "gradient_checkpointing", False))


def generation_lengths(cfg) -> tuple[int, int]:
    """(max prompt tokens, max new tokens) of a generating stage, from its ``sampling`` block."""
    return int(cfg.sampling.max_prompt_tokens), int(cfg.sampling.max_new_tokens)


def precision_of(optim) -> str:
    return "fp32" if optim.dtype == "float32" else "bf16"


def inference_precision(cfg) -> str:
    return "fp32" if getattr(cfg, "dtype", "auto") == "float32" else "bf16"


def zero_of(spec: str) -> Zero:
    """The ZeRO setting of ``distributed.deepspeed``: none, zero2, zero3 or a DeepSpeed JSON path
    (its ``zero_optimization.stage`` and ``offload_optimizer`` / ``offload_param`` devices)."""
    if spec in ("none", "zero2", "zero3"):
        return Zero(stage={"none": 0, "zero2": 2, "zero3": 3}[spec])
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"distributed.deepspeed: {spec} is not a file (use zero2, zero3 or a DeepSpeed JSON path)")
    zo = json.loads(path.read_text(encoding="utf-8")).get("zero_optimization", {})

    def offloaded(key: str) -> bool:
        return str((zo.get(key) or {}).get("device", "none")) in ("cpu", "nvme")

    return Zero(stage=int(zo.get("stage", 0)), offload_optimizer=offloaded("offload_optimizer"),
                offload_params=offloaded("offload_param"))


# which input of a stage kind names each model role it loads; a stage's own output model has the
# architecture of the input named in OUTPUT_MODEL_FROM
MODEL_ROLES: dict[str, dict[str, str]] = {
    "pretrain": {"policy": "model"}, "sft": {"policy": "model"}, "reward_model": {"reward_model": "backbone"},
    "dpo": {"policy": "policy"}, "ppo": {"policy": "policy", "reward_model": "reward_model"},
    "online_rl": {"policy": "policy", "reward_model": "reward_model"}, "sample": {"policy": "policy"},
    "rsft": {"policy": "policy", "reward_model": "reward_model"},
    "eval": {"policy": "policy", "baseline": "baseline", "reward_model": "reward_model"},
}
OUTPUT_MODEL_FROM = {"pretrain": "model", "sft": "model", "reward_model": "backbone", "dpo": "policy",
                     "ppo": "policy", "rsft": "policy", "online_rl": "policy"}
DATA_PARALLEL_KINDS = frozenset({"pretrain", "sft", "reward_model", "dpo", "ppo", "online_rl"})


def bootstrap_config(cfg) -> dict:
    """The config.json fields of the model a ``bootstrap`` stage builds (vocab: the tokenizer's
    target size, an upper bound of what it learns)."""
    m = cfg.model
    return {"model_type": m.architecture, "hidden_size": m.hidden_size, "num_hidden_layers": m.num_hidden_layers,
            "num_attention_heads": m.num_attention_heads, "num_key_value_heads": m.num_key_value_heads,
            "intermediate_size": m.intermediate_size, "vocab_size": cfg.tokenizer.vocab_size,
            "tie_word_embeddings": m.tie_word_embeddings}


# ---------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hardware:
    """What timing needs: peak FLOP/s, memory bandwidth (None: unknown) and the MFU."""

    peak_tflops: float
    bandwidth_gb_s: float | None
    mfu: float


@dataclass
class Workload:
    """Phases on each GPU, and one step: its tokens and seconds (None without a peak FLOP/s)."""

    phases: list[Phase]
    step_unit: str                        # what one step is
    tokens_per_step: float                # tokens processed by all GPUs in one step
    seconds_per_step: float | None = None
    steps: int | None = None              # None: depends on the data size (give --examples)
    steps_unit: str = "steps"             # what ``steps`` counts, for the report
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StageView:
    """A stage as the builders see it."""

    kind: str
    cfg: object
    world: int
    zero: Zero
    checkpointing: bool
    shapes: dict[str, ModelShape]        # role -> shape
    examples: int | None                 # training examples / prompts per epoch, if known
    hw: Hardware | None


def _act_bytes(precision: str) -> int:
    return 2 if precision == "bf16" else 4


def _train_phase(v: StageView, model: ModelOnGpu, rows: int, seq: int, logit_tokens: int,
                 others: tuple[ModelOnGpu, ...] = ()) -> Phase:
    """Resident ``model`` (+ ``others``) and what a forward/backward of ``rows`` x ``seq`` keeps."""
    e = _act_bytes(model.precision)
    acts = training_activation_bytes(model.shape, rows, seq, backward_layers(model.shape, model.scope),
                                     v.checkpointing, e)
    logits = logits_bytes(rows, logit_tokens, model.shape.vocab, e) if model.head == "lm" else 0.0
    return Phase("train", (model, *others), activations=acts, logits=logits)


def _generate_phase(name: str, model: ModelOnGpu, rows: int, prompt: int, new: int,
                    others: tuple[ModelOnGpu, ...] = ()) -> Phase:
    e = _act_bytes(model.precision)
    return Phase(name, (model, *others), kv_cache=kv_cache_bytes(model.shape, rows, prompt + new, e),
                 working=prefill_working_bytes(model.shape, rows, prompt, e))


def _timed(v: StageView, flops: float, gen_seconds: float = 0.0) -> float | None:
    if v.hw is None:
        return None
    return seconds_at_mfu(flops, v.world, v.hw.peak_tflops, v.hw.mfu) + gen_seconds


def _gen_seconds(v: StageView, model: ModelOnGpu, rows: int, prompt: int, new: int) -> float:
    if v.hw is None:
        return 0.0
    # every decode step reads all the weights (ZeRO-3 gathers its shards for each forward)
    weight_bytes = model.params * _act_bytes(model.precision)
    return generation_seconds(model.shape, rows, prompt, new, weight_bytes, _act_bytes(model.precision),
                              v.hw.peak_tflops, v.hw.mfu, v.hw.bandwidth_gb_s)


def _steps(v: StageView, per_step_examples: int) -> int | None:
    optim = optim_of(v.cfg)
    if optim.max_steps > 0:
        return optim.max_steps
    if v.examples is None:
        return None
    return math.ceil(optim.epochs * v.examples / per_step_examples)


def trainer_workload(v: StageView) -> Workload:
    """pretrain, sft, reward_model, dpo: one trl Trainer on one model (+ DPO's reference)."""
    optim, scope, seq = optim_of(v.cfg), scope_of(v.cfg), max_length_of(v.cfg)
    role = "reward_model" if v.kind == "reward_model" else "policy"
    head = "score" if v.kind == "reward_model" else "lm"
    model = ModelOnGpu(role, v.shapes[role], head, precision_of(optim), v.zero, scope)
    pairs = 2 if v.kind in ("reward_model", "dpo") else 1   # chosen and rejected rows
    rows = optim.per_device_batch_size * pairs
    others: tuple[ModelOnGpu, ...] = ()
    notes = []
    if v.kind == "dpo" and scope.mode != "lora":
        # trl's reference: a copy of the policy, in a DeepSpeed inference engine (16 bit, sharded
        # under ZeRO-3) or, without DeepSpeed, an fp32 copy
        ref_zero = Zero(3) if v.zero.stage == 3 else Zero(0)
        others = (ModelOnGpu("reference", model.shape, "lm", "bf16" if v.zero.stage else "fp32", ref_zero),)
    if v.kind == "reward_model" and getattr(v.cfg, "loss", "pairwise") == "listwise":
        notes.append("listwise loss: counted as pairs (a ranked tuple of k responses is k rows)")
    phase = _train_phase(v, model, rows, seq, seq, others)
    examples = optim.per_device_batch_size * optim.gradient_accumulation_steps * v.world
    tokens = examples * pairs * seq
    flops = tokens * training_flops_per_token(model.shape, head, seq, scope, v.checkpointing)
    if others:
        flops += tokens * forward_flops_per_token(model.shape, "lm", seq)
    return Workload([phase], f"optimizer step ({examples} examples x {pairs * seq} tokens)", tokens,
                    _timed(v, flops), _steps(v, examples), "optimizer steps", notes)


def ppo_workload(v: StageView) -> Workload:
    """ppo: rollout (generation with the KV cache), scoring (four forwards), update (policy then
    critic backward, micro-batch by micro-batch) with all four models resident, fp32."""
    cfg = v.cfg
    prompt, new = generation_lengths(cfg)
    shape, rm_shape = v.shapes["policy"], v.shapes["reward_model"]
    policy = ModelOnGpu("policy", shape, "lm", "fp32", v.zero, cfg.scope)
    critic_scope = (cfg.critic_scope or cfg.scope).model_copy(update={"train_score_head": True})
    critic = ModelOnGpu("critic", rm_shape, "score", "fp32", v.zero, critic_scope)
    resident = [policy, critic, ModelOnGpu("reference", shape, "lm", "fp32")]
    if "reward_model" in cfg.reward.functions:
        resident.append(ModelOnGpu("reward_model", rm_shape, "score", "fp32"))
    others = tuple(resident[1:])
    local = max(1, cfg.batch_size // v.world)
    notes = ["responses counted at max_new_tokens; prompts at max_prompt_tokens (upper bounds)"]
    for name in ("batch_size", "mini_batch_size"):
        if getattr(cfg, name) % v.world:
            notes.append(f"{name} {getattr(cfg, name)} is not a multiple of {v.world} GPUs: the ppo stage refuses that")
    micro = min(cfg.micro_batch_size, max(1, cfg.mini_batch_size // v.world))
    seq = prompt + new
    rollout = _generate_phase("rollout", policy, local, prompt, new, others)
    score_rows = min(cfg.micro_batch_size, local)
    score = Phase("score", tuple(resident), logits=logits_bytes(score_rows, new + 1, shape.vocab, 4, training=False),
                  working=prefill_working_bytes(shape, score_rows, seq, 4))
    pol = _train_phase(v, policy, micro, seq, new + 1, others)
    crit = _train_phase(v, critic, micro, seq, 0, (policy, *others[1:]))
    update = pol if pol.total(v.world) >= crit.total(v.world) else crit
    update = Phase("update", update.models, update.activations, update.logits)
    tokens = cfg.batch_size * seq
    flops = tokens * (2 * forward_flops_per_token(shape, "lm", seq) + 2 * forward_flops_per_token(rm_shape, "score", seq))
    flops += cfg.ppo_epochs * tokens * (training_flops_per_token(shape, "lm", seq, cfg.scope, v.checkpointing)
                                        + training_flops_per_token(rm_shape, "score", seq, critic_scope, v.checkpointing))
    seconds = _timed(v, flops, _gen_seconds(v, policy, local, prompt, new))
    return Workload([rollout, score, update], f"PPO step ({cfg.batch_size} rollouts of {prompt}+{new} tokens)",
                    tokens, seconds, cfg.steps, "PPO steps", notes)


def generation_workload(v: StageView) -> Workload:
    """sample and eval: one process loads a causal LM and generates (eval: policy then baseline,
    then scores with the reward model)."""
    cfg = v.cfg
    prompt, new = generation_lengths(cfg)
    prec = inference_precision(cfg)
    k = getattr(cfg, "k", 1)
    rows = cfg.sampling.batch_size * k
    roles = ["policy", "baseline"] if v.kind == "eval" else ["policy"]
    phases = [_generate_phase(f"generate {r}", ModelOnGpu(r, v.shapes[r], "lm", prec), rows, prompt, new)
              for r in roles if r in v.shapes]
    if v.kind == "eval" and "reward_model" in v.shapes:
        rm = ModelOnGpu("reward_model", v.shapes["reward_model"], "score", prec)
        rm_tokens = cfg.reward.max_length or cfg.sampling.max_prompt_tokens + cfg.sampling.max_new_tokens
        phases.append(Phase("score", (rm,), working=prefill_working_bytes(
            rm.shape, cfg.reward.score_batch_size, rm_tokens, _act_bytes(prec))))
    per_prompt = sum(_gen_seconds(v, p.models[0], rows, prompt, new) for p in phases if p.kv_cache) / cfg.sampling.batch_size
    steps = cfg.max_prompts or v.examples
    return Workload(phases, f"prompt ({k} x {new} new tokens per model)", float(len(roles) * k * (prompt + new)),
                    per_prompt if v.hw else None, steps, "prompts",
                    ["generation runs in one process on one GPU", "responses counted at max_new_tokens"])


def rsft_workload(v: StageView) -> Workload:
    """rsft: per iteration, generate k samples per prompt, score them (reward model resident for
    the whole stage), fine-tune on the kept ones (one process, no DeepSpeed)."""
    cfg = v.cfg
    prompt, new = generation_lengths(cfg)
    prec = inference_precision(cfg)
    rm = (ModelOnGpu("reward_model", v.shapes["reward_model"], "score", prec),) \
        if cfg.scorer == "reward_model" and "reward_model" in v.shapes else ()
    rows = cfg.sampling.batch_size * cfg.k
    gen = _generate_phase("generate", ModelOnGpu("policy", v.shapes["policy"], "lm", prec), rows, prompt, new, rm)
    optim, seq = optim_of(cfg), max_length_of(cfg)
    trained = ModelOnGpu("policy", v.shapes["policy"], "lm", precision_of(optim), Zero(0), scope_of(cfg))
    train = _train_phase(v, trained, optim.per_device_batch_size, seq, seq, rm)
    kept = cfg.prompts_per_iteration * cfg.keep_top
    train_tokens = optim.epochs * kept * seq
    flops = train_tokens * training_flops_per_token(trained.shape, "lm", seq, trained.scope, v.checkpointing)
    gen_s = _gen_seconds(v, gen.models[0], rows, prompt, new) * cfg.prompts_per_iteration / cfg.sampling.batch_size
    return Workload([gen, train], f"iteration ({cfg.prompts_per_iteration} prompts x {cfg.k} samples, "
                    f"{kept} kept)", cfg.prompts_per_iteration * cfg.k * (prompt + new) + train_tokens,
                    _timed(v, flops, gen_s), cfg.iterations, "iterations", ["one process on one GPU; no DeepSpeed"])


def online_rl_workload(v: StageView) -> Workload:
    """online_rl (trl GRPO / RLOO): the policy generates its completions, then trains on them; a
    reference (kl.coef > 0, not LoRA) and the reward model stay resident."""
    cfg = v.cfg
    prompt, new = generation_lengths(cfg)
    optim, scope = optim_of(cfg), scope_of(cfg)
    policy = ModelOnGpu("policy", v.shapes["policy"], "lm", precision_of(optim), v.zero, scope)
    others = []
    if cfg.kl.coef > 0 and scope.mode != "lora":
        others.append(ModelOnGpu("reference", policy.shape, "lm", "bf16" if v.zero.stage else "fp32",
                                 Zero(3) if v.zero.stage == 3 else Zero(0)))
    if "reward_model" in cfg.reward.functions and "reward_model" in v.shapes:
        others.append(ModelOnGpu("reward_model", v.shapes["reward_model"], "score", "fp32"))
    rows, seq = optim.per_device_batch_size, prompt + new
    # trl generates the completions of all accumulation steps at once (steps_per_generation)
    gen_rows = rows * optim.gradient_accumulation_steps
    gen = _generate_phase("generate", policy, gen_rows, prompt, new, tuple(others))
    train = _train_phase(v, policy, rows, seq, seq, tuple(others))
    completions = rows * optim.gradient_accumulation_steps * v.world
    tokens = completions * seq
    flops = tokens * (cfg.ppo_epochs * training_flops_per_token(policy.shape, "lm", seq, scope, v.checkpointing)
                      + len(others) * forward_flops_per_token(policy.shape, "lm", seq))
    gen_s = _gen_seconds(v, policy, gen_rows, prompt, new)
    steps = _steps(v, completions // cfg.k)
    return Workload([gen, train], f"step ({completions} completions of {prompt}+{new} tokens)", tokens,
                    _timed(v, flops, gen_s), steps, "steps", ["--examples counts prompts for online_rl"])


BUILDERS = {"pretrain": trainer_workload, "sft": trainer_workload, "reward_model": trainer_workload,
            "dpo": trainer_workload, "ppo": ppo_workload, "sample": generation_workload,
            "eval": generation_workload, "rsft": rsft_workload, "online_rl": online_rl_workload}


def stage_workload(v: StageView) -> Workload:
    return BUILDERS[v.kind](v)
