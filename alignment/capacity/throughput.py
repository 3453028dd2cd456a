"""FLOPs per token, and the time they take at a stated model FLOPs utilisation (MFU).

MFU, as the PaLM paper defines it (Chowdhery et al. 2022, Appendix B), is the share of the GPUs'
peak FLOP/s that goes into the model's own arithmetic: a trained token costs 6N + 12 L h s FLOPs
(N the parameters in matrix products, L blocks, h the attention width, s the sequence length),
a forward 2N + 4 L h s. Recomputation (activation checkpointing) is extra work that MFU does not
count, so it lowers tokens/s at a fixed MFU. Well-tuned 7B-70B training reaches an MFU of about
0.35-0.5 on A100/H100; :data:`DEFAULT_MFU` is 0.35.

Decoding one token at a time reads every weight and the whole KV cache for each step, so small
batches are bound by memory bandwidth rather than FLOPs: :func:`generation_seconds` takes the
slower of the two (the roofline), each step at the stated MFU or at the full bandwidth.
"""

from __future__ import annotations

from alignment.capacity.shapes import (Head, ModelShape, backward_layers, block_params, matmul_params,
                                       trainable_params)

DEFAULT_MFU = 0.35   # share of peak FLOP/s; a typical figure for ZeRO data-parallel 7B-70B training


def attention_flops_per_token(shape: ModelShape, context: int) -> float:
    """Forward FLOPs of the score and value products of one token over ``context`` positions,
    all blocks: 2 x 2 x L x (heads x head_dim) x context (PaLM counts the full context)."""
    return 4.0 * shape.layers * shape.q_width * context


def forward_flops_per_token(shape: ModelShape, head: Head, context: int) -> float:
    """2N + 4 L h s: one multiply-add per parameter in a matrix product, plus attention."""
    return 2.0 * matmul_params(shape, head) + attention_flops_per_token(shape, context)


def training_flops_per_token(shape: ModelShape, head: Head, seq: int, scope, checkpointing: bool = False) -> float:
    """Forward + backward (+ recomputation) FLOPs of one trained token of a ``seq``-token row.

    The backward computes gradients w.r.t. activations through the blocks it goes through
    (2 per parameter of those blocks and of the head, and twice the forward attention) and
    w.r.t. the trainable weights (2 per trainable parameter). A full scope gives the PaLM count,
    3 x forward = 6N + 12 L h s; ``last_n_layers`` stops at the lowest trainable block; LoRA goes
    through every block but computes weight gradients for the adapters only (the embedding
    lookup's gradient, a scatter, is counted as 2 per parameter when embeddings train: an upper
    bound). Checkpointing adds one more forward of the blocks on the backward path.
    """
    forward = forward_flops_per_token(shape, head, seq)
    layers = backward_layers(shape, scope)
    head_mm = matmul_params(shape, head) - shape.layers * block_params(shape)
    through = layers * (2.0 * block_params(shape)) + 2.0 * head_mm \
        + 2.0 * attention_flops_per_token(shape, seq) * layers / shape.layers
    weight_grads = 2.0 * (matmul_params(shape, head) if scope.mode == "full" else trainable_params(shape, head, scope))
    recompute = (layers * 2.0 * block_params(shape) + attention_flops_per_token(shape, seq) * layers / shape.layers) \
        if checkpointing else 0.0
    return forward + through + weight_grads + recompute


def seconds_at_mfu(flops: float, gpus: int, peak_tflops: float, mfu: float) -> float:
    """Wall seconds for ``flops`` spread over ``gpus`` GPUs running at ``mfu`` x peak."""
    return flops / (gpus * peak_tflops * 1e12 * mfu)


def generation_seconds(shape: ModelShape, rows: int, prompt_tokens: int, new_tokens: int, weight_bytes: float,
                       act_bytes: int, peak_tflops: float, mfu: float, bandwidth_gb_s: float | None) -> float:
    """Seconds for one process to generate ``new_tokens`` for ``rows`` prompts of ``prompt_tokens``.

    Prefill: rows x prompt forward tokens at ``mfu``. Each decode step: rows tokens at ``mfu``, or
    reading ``weight_bytes`` and the KV cache at ``bandwidth_gb_s``, whichever is slower (roofline;
    no bandwidth given: FLOPs only). Responses are taken at full length (no early end-of-sequence).
    """
    prefill = seconds_at_mfu(rows * prompt_tokens * forward_flops_per_token(shape, "lm", prompt_tokens),
                             1, peak_tflops, mfu)
    mean_context = prompt_tokens + new_tokens / 2
    compute = seconds_at_mfu(rows * forward_flops_per_token(shape, "lm", int(mean_context)), 1, peak_tflops, mfu)
    memory = 0.0
    if bandwidth_gb_s:
        kv = 2.0 * shape.layers * shape.kv_width * rows * mean_context * act_bytes
        memory = (weight_bytes + kv) / (bandwidth_gb_s * 1e9)
    return prefill + new_tokens * max(compute, memory)
