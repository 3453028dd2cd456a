"""The embedded default model: a byte-level BPE tokenizer trained on the corpus + a tiny causal LM.

    tok = train_tokenizer(texts, TokenizerSpec(vocab_size=4096))
    model = build_tiny_model(ModelSpec(), tok, seed=0)
    save_checkpoint(model, tok, "out/model")      # AutoModelForCausalLM / AutoTokenizer load it

Both are deterministic: the same texts (in the same order), spec and seed give byte-identical
tokenizer files and identical weights. The tokenizer is byte-level, so any text (Chinese, English,
emoji) encodes without unknown tokens; ``<|endoftext|>`` is the pad token and ``<|im_end|>`` the
end-of-turn (eos) token that stops generation. The chat template is :data:`alignment.chat.CHATML_TEMPLATE`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from alignment.chat import CHATML_TEMPLATE, ENDOFTEXT, IM_END, IM_START, SPECIAL_TOKENS
from medalign.config import StrictModel

log = logging.getLogger("medalign.alignment.bootstrap")

# Qwen2's split: letters with at most one leading non-letter, single digits, punctuation runs,
# newlines, whitespace. CJK characters are letters, so Chinese runs stay whole before BPE.
PRETOKENIZE_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                     r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


class TokenizerSpec(StrictModel):
    """How to train the byte-level BPE tokenizer."""

    vocab_size: int = Field(4096, ge=256 + len(SPECIAL_TOKENS))  # incl. 256 byte tokens and the specials
    min_frequency: int = Field(2, ge=1)                         # a pair must occur this often to merge
    max_texts: int | None = Field(None, ge=1)                   # use only the first N corpus texts (None: all)


class ModelSpec(StrictModel):
    """Shape of the tiny causal LM built from scratch (defaults: ~0.6M parameters + embeddings)."""

    architecture: Literal["qwen2", "llama"] = "qwen2"   # Qwen2ForCausalLM or LlamaForCausalLM
    hidden_size: int = Field(64, ge=8)                  # model width
    num_hidden_layers: int = Field(2, ge=1)             # transformer blocks
    num_attention_heads: int = Field(4, ge=1)           # query heads
    num_key_value_heads: int = Field(2, ge=1)           # key/value heads (grouped-query attention)
    intermediate_size: int = Field(128, ge=8)           # MLP width
    max_position_embeddings: int = Field(1024, ge=16)   # longest sequence the model accepts
    rope_theta: float = Field(10000.0, gt=0)            # rotary base
    tie_word_embeddings: bool = True                    # share input embeddings and lm_head
    initializer_range: float = Field(0.02, gt=0)        # std of the normal weight init

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelSpec:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by "
                             f"num_attention_heads {self.num_attention_heads}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads {self.num_attention_heads} is not divisible by "
                             f"num_key_value_heads {self.num_key_value_heads}")
        return self


def train_tokenizer(texts: Iterable[str], spec: TokenizerSpec):
    """Train a byte-level BPE on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``.

    The returned tokenizer has the special tokens, pad = ``<|endoftext|>``, eos = ``<|im_end|>``
    and the ChatML chat template with generation markers.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # The same normaliser and pre-tokeniser as transformers' Qwen2Tokenizer, which AutoTokenizer
    # substitutes for a qwen2 checkpoint and rebuilds from vocab + merges: with any other pipeline
    # the reloaded tokenizer would split text differently from the one the model was trained with.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size, min_frequency=spec.min_frequency,
        special_tokens=list(SPECIAL_TOKENS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_limited(texts, spec.max_texts), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=ENDOFTEXT, bos_token=None, unk_token=None,
        extra_special_tokens=[IM_START], padding_side="right", model_max_length=1 << 20,
    )
    wrapped.chat_template = CHATML_TEMPLATE
    return wrapped


def _limited(texts: Iterable[str], limit: int | None) -> Iterator[str]:
    for i, text in enumerate(texts):
        if limit is not None and i >= limit:
            return
        if not isinstance(text, str):
            raise TypeError(f"tokenizer corpus item {i}: expected str, got {type(text).__name__}")
        yield text


def model_config(spec: ModelSpec, tokenizer):
    """The transformers config (Qwen2Config or LlamaConfig) of a tiny model for ``tokenizer``."""
    from transformers import LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads, intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": spec.rope_theta},
        tie_word_embeddings=spec.tie_word_embeddings, initializer_range=spec.initializer_range,
        bos_token_id=None, eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.pad_token_id, use_cache=True,
    )
    cls = Qwen2Config if spec.architecture == "qwen2" else LlamaConfig
    return cls(**common)


def build_tiny_model(spec: ModelSpec, tokenizer, seed: int):
    """A randomly initialised causal LM shaped by ``spec``; the same seed gives the same weights."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    config = model_config(spec, tokenizer)
    devices = []  # fork the RNG so building a model does not disturb the caller's random stream
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, bos_token_id=None,
        do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=128,
    )
    n = sum(p.numel() for p in model.parameters())
    log.info("built %s model: %d parameters (vocab %d)", spec.architecture, n, config.vocab_size)
    return model


def save_checkpoint(model, tokenizer, out_dir: str | Path) -> Path:
    """Save model + tokenizer (+ chat template) as a normal Hugging Face checkpoint directory."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def bootstrap(texts: Iterable[str], out_dir: str | Path, tokenizer_spec: TokenizerSpec,
              model_spec: ModelSpec, seed: int) -> dict:
    """Train the tokenizer, build the model, save both to ``out_dir``; return a small summary."""
    tokenizer = train_tokenizer(texts, tokenizer_spec)
    model = build_tiny_model(model_spec, tokenizer, seed)
    save_checkpoint(model, tokenizer, out_dir)
    return {"vocab_size": len(tokenizer), "parameters": sum(p.numel() for p in model.parameters()),
            "architecture": model_spec.architecture}
