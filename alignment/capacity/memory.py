"""Memory per GPU: model states under ZeRO, activations, logits, KV cache; a phase's total.

All figures are bytes per GPU (one data-parallel rank per GPU, ``world`` ranks). The planner prints
GB = 2**30 bytes, as DeepSpeed's estimators print them and as an "80 GB" A100 has 81,920 MiB.

Sources:
- Model states: the ZeRO paper (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward
  Training Trillion Parameter Models", Section 3: mixed-precision Adam keeps 2 + 2 + 12 bytes per
  parameter) and DeepSpeed's own estimators, whose byte counts we follow so that our figures agree
  with theirs (``deepspeed.runtime.zero.stage_1_and_2.estimate_zero2_model_states_mem_needs`` and
  ``deepspeed.runtime.zero.stage3.estimate_zero3_model_states_mem_needs``, DeepSpeed 0.19.8).
- Activations: Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
  Models", Section 4.1 (34sbh + 5as^2b bytes per GPT layer), generalised to grouped-query
  attention, gated MLPs, no dropout and fused attention kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from alignment.capacity.shapes import Head, ModelShape, largest_layer_params, total_params, trainable_params

GIB = float(1 << 30)
Precision = Literal["bf16", "fp32"]
ADAM_BYTES = 8          # Adam's two fp32 moments per trainable parameter
MASTER_BYTES = 4        # the fp32 copy of a trainable parameter the optimizer steps on
DS_ZERO3_EXTRA = 2      # DeepSpeed's ZeRO-3 estimator counts 18 bytes per parameter, the paper 16


@dataclass(frozen=True)
class Zero:
    """How a model's states are spread over the ranks: DeepSpeed ZeRO stage and CPU offload.

    Stage 0 is no DeepSpeed (one process, or torch DDP: everything replicated)."""

    stage: int = 0                    # 0, 1, 2 or 3
    offload_optimizer: bool = False   # optimizer states (and ZeRO-2/3 gradients) in CPU memory
    offload_params: bool = False      # ZeRO-3: 16-bit parameter partitions in CPU memory too

    def label(self) -> str:
        if self.stage == 0:
            return "no ZeRO"
        where = [n for n, on in (("optimizer", self.offload_optimizer), ("params", self.offload_params)) if on]
        return f"ZeRO-{self.stage}" + (f" + offload {'/'.join(where)}" if where else "")


@dataclass(frozen=True)
class ModelStates:
    """Bytes per GPU of one model's (or several models') states."""

    weights: float = 0.0
    gradients: float = 0.0
    optimizer: float = 0.0

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer

    def __add__(self, other: ModelStates) -> ModelStates:
        return ModelStates(self.weights + other.weights, self.gradients + other.gradients,
                           self.optimizer + other.optimizer)


def model_states(total: int, trainable: int, world: int, zero: Zero, precision: Precision = "bf16",
                 largest_layer: int = 0) -> ModelStates:
    """Weights, gradients and Adam states per GPU of a model with ``total`` parameters of which
    ``trainable`` train, on ``world`` data-parallel ranks.

    ``precision="bf16"`` is mixed precision. Under DeepSpeed (stage >= 1) the model runs in 16 bit
    (2 bytes per parameter) and each trainable parameter has a 16-bit gradient (2), an fp32
    gradient (4), an fp32 master copy (4) and Adam's moments (8), DeepSpeed's ZeRO-2 estimator's
    count ("18 = 2_grads_16bit + 4_grads_32bit + 4_params_32bit + 8_optimizer_states_32bit").
    Stage 0 is torch autocast (HF Trainer without DeepSpeed): fp32 weights (4) and gradients (4)
    plus Adam (8), the 16 bytes of the ZeRO paper, nothing sharded.
    ``precision="fp32"``: 4-byte weights and gradients, Adam (8); ZeRO-1/2 still clone the fp32
    partition for the optimizer (``stage_1_and_2.py``), ZeRO-3 steps on the partition itself.

    Sharding (stage: what is divided by ``world``): 1 optimizer states; 2 also gradients; 3 also
    weights, plus one fully gathered largest layer (its 16-bit parameters and gradients: 4 bytes
    per parameter of ``largest_layer``, as DeepSpeed's ZeRO-3 estimator counts it). ZeRO-3 mixed
    precision counts 18 bytes per sharded parameter like DeepSpeed's estimator (2 more than
    2 + 2 + 12; we put them with the optimizer states). Offloading the optimizer moves the optimizer
    states and the sharded gradients to CPU memory; ZeRO-3 can offload the parameters as well.
    Frozen parameters (``total - trainable``) only have weights.
    """
    w = 2 if precision == "bf16" else 4                    # bytes of the working weights
    if zero.stage == 0:
        return ModelStates(4.0 * total, 4.0 * trainable, float(ADAM_BYTES * trainable))
    n = float(world)
    grad32 = 4 if precision == "bf16" else 0               # fp32 gradient copy (none in fp32)
    if zero.stage in (1, 2):
        grads = w * trainable * (1 / n if zero.stage == 2 else 1.0) + grad32 * trainable / n
        optim = (MASTER_BYTES + ADAM_BYTES) * trainable / n
        if zero.offload_optimizer:
            grads = optim = 0.0
        return ModelStates(float(w * total), grads, optim)
    if zero.stage != 3:
        raise ValueError(f"ZeRO stage {zero.stage}: expected 0, 1, 2 or 3")
    gathered = 2 * w * largest_layer
    weights = gathered + (0.0 if zero.offload_params else w * total / n)
    per_param = MASTER_BYTES + ADAM_BYTES + DS_ZERO3_EXTRA if precision == "bf16" else ADAM_BYTES
    grads, optim = w * trainable / n, per_param * trainable / n
    if zero.offload_optimizer:
        grads = optim = 0.0
    return ModelStates(weights, grads, optim)


@dataclass(frozen=True)
class ModelOnGpu:
    """One model a stage holds on every GPU: its shape, head, dtype, engine and what trains."""

    role: str                       # policy, reference, critic, reward_model, ...
    shape: ModelShape
    head: Head = "lm"               # lm: causal LM; score: one-label sequence classifier
    precision: Precision = "bf16"   # trained: bf16 = mixed precision; frozen: the weights' dtype
    zero: Zero = Zero()             # the DeepSpeed engine it lives in (stage 0: a plain copy)
    scope: object | None = None     # alignment.scope.TrainableScope; None: frozen

    @property
    def params(self) -> int:
        return total_params(self.shape, self.head)

    @property
    def trainable(self) -> int:
        return trainable_params(self.shape, self.head, self.scope)

    def states(self, world: int) -> ModelStates:
        """Bytes per GPU of this model's weights (and, when it trains, gradients and optimizer)."""
        if self.scope is None:
            w = 2 if self.precision == "bf16" else 4
            if self.zero.stage == 3:
                return ModelStates(weights=w * self.params / world + w * largest_layer_params(self.shape, self.head))
            return ModelStates(weights=float(w * self.params))
        return model_states(self.params, self.trainable, world, self.zero, self.precision,
                            largest_layer_params(self.shape, self.head))


def layer_activation_bytes(shape: ModelShape, rows: int, seq: int, act_bytes: int = 2,
                           flash: bool | None = None, dropout: bool = False) -> float:
    """Bytes one transformer block keeps for its backward pass (Korthikanti et al. 2022, §4.1).

    With s = seq, b = rows, h = hidden, a = heads, i = intermediate, kv = kv_heads x head_dim and
    2-byte activations: attention 2sbh (qkv input) + 2sbh (Q) + 2 x 2sb kv (K, V) + 2sbh (output
    projection input); without a fused kernel also the softmax output 2as^2b; MLP 2sbh (input) +
    2sbi x 4 for a gated MLP (gate and up outputs, the activation, the down-projection input) or
    2sbi x 2 for a plain one (activation input, second linear input); 2 x 2sbh for the two norms'
    inputs. ``dropout`` adds the masks (sbh after attention and MLP, as^2b) and the dropped
    probabilities (2as^2b). For a GPT block (i = 4h, kv = h, dropout, no fused kernel) this is
    exactly the paper's 34sbh + 5as^2b. A fused kernel (``flash``; default: the family's
    ``eager_attention`` is false, as transformers' sdpa is) keeps only its fp32 log-sum-exp (4asb).
    """
    s, b, h, i, a = seq, rows, shape.hidden, shape.intermediate, shape.heads
    flash = (not shape.spec.eager_attention) if flash is None else flash
    e = act_bytes
    attention = e * s * b * (2 * shape.q_width + 2 * shape.kv_width + h)
    scores = 4.0 * a * s * b if flash else e * a * s * s * b + dropout * (1 + e) * a * s * s * b
    mlp = e * s * b * h + e * s * b * i * (4 if shape.spec.gated_mlp else 2)
    norms = 2 * e * s * b * h
    masks = 2 * s * b * h if dropout else 0
    return float(attention + scores + mlp + norms + masks)


def training_activation_bytes(shape: ModelShape, rows: int, seq: int, layers: int, checkpointing: bool,
                              act_bytes: int = 2) -> float:
    """Activations kept for backward over ``layers`` blocks (the ones gradients flow through).

    Without checkpointing every block keeps :func:`layer_activation_bytes`. With full activation
    checkpointing (transformers' per-block ``gradient_checkpointing``) a block keeps only its input
    (2sbh: Korthikanti et al.'s "2sbhL" for full recomputation) and one block at a time is
    recomputed during backward, so one block's activations come on top."""
    if layers == 0:
        return 0.0
    per_layer = layer_activation_bytes(shape, rows, seq, act_bytes)
    if checkpointing:
        return layers * act_bytes * rows * seq * shape.hidden + per_layer
    return layers * per_layer


def logits_bytes(rows: int, seq: int, vocab: int, act_bytes: int = 2, training: bool = True) -> float:
    """The vocabulary logits of a causal-LM forward: the logits the model returns (``act_bytes``)
    and the fp32 log-softmax the loss or the log-probs are computed from (4); training adds one
    more fp32 tensor of that size (the fp32 copy transformers makes for the loss in the forward,
    the logits' gradient in the backward). Our accounting; these dominate at vocabularies of 150k+."""
    per = act_bytes + 4 + (4 if training else 0)
    return float(rows) * seq * vocab * per


def kv_cache_bytes(shape: ModelShape, rows: int, tokens: int, act_bytes: int = 2) -> float:
    """Keys and values of every block for ``rows`` sequences of ``tokens`` (prompt + response):
    2 x layers x kv_heads x head_dim x rows x tokens x bytes."""
    return 2.0 * shape.layers * shape.kv_width * rows * tokens * act_bytes


def prefill_working_bytes(shape: ModelShape, rows: int, prompt_tokens: int, act_bytes: int = 2) -> float:
    """Temporaries of one block's forward over the whole prompt (no gradient kept): bounded by what
    the block would keep for backward (:func:`layer_activation_bytes`); blocks run one at a time."""
    return layer_activation_bytes(shape, rows, prompt_tokens, act_bytes)


@dataclass(frozen=True)
class Phase:
    """What is on each GPU during one part of a stage (training, rollout, scoring, generation).

    ``models`` stay resident; the other fields are per-GPU bytes of that phase only."""

    name: str
    models: tuple[ModelOnGpu, ...]
    activations: float = 0.0      # kept for backward
    logits: float = 0.0           # vocabulary logits and their fp32 log-softmax
    kv_cache: float = 0.0         # generation
    working: float = 0.0          # transient forward temporaries (prefill, scoring)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def states(self, world: int) -> ModelStates:
        total = ModelStates()
        for m in self.models:
            total = total + m.states(world)
        return total

    def total(self, world: int) -> float:
        return self.states(world).total + self.activations + self.logits + self.kv_cache + self.working
