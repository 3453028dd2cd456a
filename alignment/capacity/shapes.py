"""Model shapes and parameter counts, from a config.json or the table of known sizes.

    shape = shape_from_config(json.load(open("ckpt/config.json")), name="ckpt")
    shape = known_shape("Qwen/Qwen2-7B")            # alignment/capacity/sizes.yaml, no download
    total_params(shape, "lm")                        # 7,615,616,512 (what transformers counts)
    trainable_params(shape, "lm", scope)             # full / lora / last_n_layers

Counts are exact for the families in ``sizes.yaml`` (a test builds every table entry with
transformers on the meta device and compares). ``head`` says which model is built on the
backbone: ``"lm"`` (a causal LM: lm_head, tied or not) or ``"score"`` (a one-label sequence
classifier: reward model, critic; no lm_head, a ``score`` row of width h).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from medalign.config import StrictModel, load_config

HERE = Path(__file__).resolve().parent
Head = Literal["lm", "score"]


class FamilySpec(StrictModel):
    """How the blocks of one ``model_type`` are built (see the comment in sizes.yaml)."""

    tie_word_embeddings: bool        # default when a config.json does not say (transformers' config class)
    gated_mlp: bool                  # SwiGLU gate/up/down projections (else up/down with GeLU)
    norm_bias: bool                  # LayerNorm with bias (else RMSNorm, weight only)
    qkv_bias: bool                   # q/k/v projections carry biases
    out_bias: bool                   # attention output projection carries a bias
    mlp_bias: bool                   # MLP projections carry biases
    embedding_norm: bool             # a norm right after the token embeddings (BLOOM)
    eager_attention: bool            # attention probabilities (s x s) are stored for backward
    lora_targets: dict[str, tuple[str, str]]  # module name -> (input width, output width) expressions


class SizesTable(StrictModel):
    """alignment/capacity/sizes.yaml."""

    families: dict[str, FamilySpec]
    models: dict[str, dict[str, int | bool | str]]   # hub id -> the config.json fields that matter
    aliases: dict[str, str] = Field(default_factory=dict)  # short name -> hub id in models


class GpuSpec(StrictModel):
    """One GPU type of alignment/capacity/gpus.yaml."""

    peak_tflops: float = Field(..., gt=0)       # dense bf16 peak, TFLOP/s
    memory_gb: float = Field(..., gt=0)         # nominal memory
    bandwidth_gb_s: float = Field(..., gt=0)    # memory bandwidth, GB/s
    names: list[str] = Field(default_factory=list)  # other spellings


class GpuTable(StrictModel):
    """alignment/capacity/gpus.yaml."""

    gpus: dict[str, GpuSpec]


TABLE_SCHEMAS = {"sizes.yaml": SizesTable, "gpus.yaml": GpuTable}   # data files of this folder -> schema


@dataclass(frozen=True)
class ModelShape:
    """What the memory and FLOP formulas need to know about a decoder-only transformer."""

    name: str
    family: str
    hidden: int              # h
    layers: int              # L
    heads: int               # a (query heads)
    kv_heads: int            # key/value heads (grouped-query attention; = heads without it)
    head_dim: int
    intermediate: int        # MLP width i
    vocab: int               # V
    tie_embeddings: bool     # lm_head shares the embedding matrix
    spec: FamilySpec

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim


@lru_cache(maxsize=None)
def sizes_table(path: str = str(HERE / "sizes.yaml")) -> SizesTable:
    return load_config(path, SizesTable)


@lru_cache(maxsize=None)
def gpu_table(path: str = str(HERE / "gpus.yaml")) -> dict[str, GpuSpec]:
    return load_config(path, GpuTable).gpus


def find_gpu(name: str) -> tuple[str, GpuSpec] | None:
    """The table entry whose name or one of whose spellings is ``name`` (case-insensitive)."""
    wanted = name.strip().lower()
    for key, spec in gpu_table().items():
        if wanted == key.lower() or wanted in (n.lower() for n in spec.names):
            return key, spec
    return None


_KEYS = {  # field -> config.json spellings, first present wins (BLOOM's own names included)
    "hidden": ("hidden_size", "n_embed", "n_embd", "d_model"),
    "layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "heads": ("num_attention_heads", "n_head"),
}


def _get(config: dict, field: str, name: str) -> int:
    for key in _KEYS[field]:
        if config.get(key) is not None:
            return int(config[key])
    raise ValueError(f"{name}: config has none of {', '.join(_KEYS[field])}")


def shape_from_config(config: dict, name: str) -> ModelShape:
    """A :class:`ModelShape` from a Hugging Face config.json mapping (``name`` is for messages)."""
    families = sizes_table().families
    family = config.get("model_type")
    if family not in families:
        raise ValueError(f"{name}: model_type {family!r} is not one of {', '.join(sorted(families))} "
                         "(alignment/capacity/sizes.yaml lists the families the planner can size)")
    hidden, heads = _get(config, "hidden", name), _get(config, "heads", name)
    return ModelShape(
        name=name, family=family, hidden=hidden, layers=_get(config, "layers", name), heads=heads,
        kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or hidden // heads),
        intermediate=int(config.get("intermediate_size") or 4 * hidden),
        vocab=int(config["vocab_size"]),
        tie_embeddings=bool(config.get("tie_word_embeddings", families[family].tie_word_embeddings)),
        spec=families[family])


def known_shape(name: str) -> ModelShape | None:
    """The shape of a model in sizes.yaml by hub id or alias (case-insensitive), else None."""
    table = sizes_table()
    lookup = {k.lower(): k for k in table.models} | {k.lower(): v for k, v in table.aliases.items()}
    key = lookup.get(name.strip().lower())
    if key is None:
        return None
    return shape_from_config(table.models[key], name=name if name == key else f"{name} (as {key})")


def _width(expr: str, shape: ModelShape) -> int:
    """Evaluate a width expression of sizes.yaml: ``h``, ``3h``, ``q``, ``kv``, ``i``."""
    m = re.fullmatch(r"(\d*)(h|q|kv|i)", expr.strip())
    if not m:
        raise ValueError(f"sizes.yaml: width {expr!r} is not [N](h|q|kv|i)")
    value = {"h": shape.hidden, "q": shape.q_width, "kv": shape.kv_width, "i": shape.intermediate}[m.group(2)]
    return int(m.group(1) or 1) * value


def norm_params(shape: ModelShape) -> int:
    return shape.hidden * (2 if shape.spec.norm_bias else 1)


def block_params(shape: ModelShape) -> int:
    """Parameters of one transformer block: attention, MLP, two norms."""
    s, h = shape.spec, shape.hidden
    attn = h * (shape.q_width + 2 * shape.kv_width) + shape.q_width * h
    attn += (shape.q_width + 2 * shape.kv_width) * s.qkv_bias + h * s.out_bias
    n_up = 2 if s.gated_mlp else 1
    mlp = (n_up + 1) * h * shape.intermediate + (n_up * shape.intermediate + h) * s.mlp_bias
    return attn + mlp + 2 * norm_params(shape)


def head_params(shape: ModelShape, head: Head) -> int:
    """Parameters outside the embeddings and blocks: final norm and the head."""
    if head == "score":
        return norm_params(shape) + shape.hidden          # score: Linear(h, 1, bias=False)
    return norm_params(shape) + (0 if shape.tie_embeddings else shape.vocab * shape.hidden)


def embedding_params(shape: ModelShape) -> int:
    return shape.vocab * shape.hidden + (norm_params(shape) if shape.spec.embedding_norm else 0)


def total_params(shape: ModelShape, head: Head = "lm") -> int:
    """Every parameter, tied weights once (``sum(p.numel() for p in model.parameters())``)."""
    return embedding_params(shape) + shape.layers * block_params(shape) + head_params(shape, head)


def largest_layer_params(shape: ModelShape, head: Head = "lm") -> int:
    """Parameters of the largest single module, as DeepSpeed's ``model_to_params`` finds it for
    ZeRO-3 (``sum(p.numel() for p in m.parameters(recurse=False))`` over modules): in these
    families the token embedding (V x h) unless an MLP projection is larger."""
    h, i, s = shape.hidden, shape.intermediate, shape.spec
    candidates = [shape.vocab * h, h * i + (i if s.mlp_bias else 0),
                  h * (shape.q_width + 2 * shape.kv_width) + (shape.q_width + 2 * shape.kv_width) * s.qkv_bias]
    return max(candidates)


def matmul_params(shape: ModelShape, head: Head = "lm") -> int:
    """Parameters that take part in a matrix product per token: every block, and the head
    (the lm_head's V x h product is done even when its matrix is the tied embedding). The
    embedding lookup itself does no arithmetic. This is the N of the 2N / 6N FLOP rules."""
    out = shape.vocab * shape.hidden if head == "lm" else shape.hidden
    return shape.layers * block_params(shape) + out


def lora_params(shape: ModelShape, r: int, targets: list[str]) -> int:
    """LoRA adapter parameters of all blocks: r x (in + out) per targeted linear layer (peft)."""
    known = shape.spec.lora_targets
    found = [t for t in targets if t in known]
    if not found:
        raise ValueError(f"{shape.name}: none of the LoRA target modules {targets} exists in a {shape.family} "
                         f"block (its linear layers: {', '.join(known)})")
    per_block = sum(r * (_width(known[t][0], shape) + _width(known[t][1], shape)) for t in found)
    return shape.layers * per_block


def trainable_params(shape: ModelShape, head: Head, scope) -> int:
    """Parameters that train under ``scope`` (an :class:`alignment.scope.TrainableScope`), as
    :func:`alignment.scope.apply_trainable_scope` sets ``requires_grad``; LoRA counts the
    adapters plus the modules it keeps trainable (score head, embeddings, lm_head)."""
    if scope is None:
        return 0
    if scope.mode == "full":
        return total_params(shape, head)
    extra = 0
    if head == "score" and scope.train_score_head:
        extra += shape.hidden
    if scope.train_embeddings:
        extra += shape.vocab * shape.hidden
    if head == "lm" and scope.train_lm_head and not (shape.tie_embeddings and scope.train_embeddings):
        extra += shape.vocab * shape.hidden
    if scope.mode == "lora":
        return lora_params(shape, scope.lora.r, list(scope.lora.target_modules)) + extra
    n = _last_n(shape, scope)
    return n * block_params(shape) + (norm_params(shape) if scope.train_final_norm else 0) + extra


def backward_layers(shape: ModelShape, scope) -> int:
    """Blocks the backward pass goes through (they keep activations for it): all of them, except
    under ``last_n_layers`` without trainable embeddings, where the frozen blocks below need no
    gradient and autograd keeps nothing for them."""
    if scope is None:
        return 0
    if scope.mode == "last_n_layers" and not scope.train_embeddings:
        return _last_n(shape, scope)
    return shape.layers


def _last_n(shape: ModelShape, scope) -> int:
    if scope.n_layers > shape.layers:
        raise ValueError(f"trainable scope: n_layers={scope.n_layers} but {shape.name} has {shape.layers} blocks")
    return scope.n_layers
