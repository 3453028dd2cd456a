"""Batched sampling from a causal LM for chat prompts: left padding, KV cache, seeded.

    spec = SamplingSpec(temperature=0.8, top_p=0.95, max_new_tokens=64)
    outs = generate_responses(model, tokenizer, prompts, spec, k=4, seed=0)
    outs[i][j].text      # j-th sample for prompt i (special tokens stripped)
    outs[i][j].n_tokens  # response tokens generated, end-of-turn included

Prompts are conversations ending with a user turn, rendered with the tokenizer's chat template
plus the assistant header. Decoder-only models continue from the last position, so a batch is
padded on the LEFT: every prompt then ends at the same column and the new tokens line up.
``model.generate`` keeps the KV cache (``use_cache=True``), so each new token costs one
position, not a full re-forward.

Seeding: the torch RNG is forked and seeded with ``seed + batch_index`` for each batch, so the
same prompts, batch size and seed give the same samples, and the caller's RNG is untouched.
Prompts are sorted by length before batching (less padding); results come back in input order.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from alignment.chat import prompt_text
from medalign.config import StrictModel


class SamplingSpec(StrictModel):
    """Decoding parameters for sampling responses: the ``sampling`` block of every stage that
    generates (sample, eval, rsft, ppo, online_rl). The RL stages sample at temperature > 0;
    online_rl generates a step's samples at once (``batch_size`` stays at its default), ppo in
    calls of ``batch_size`` prompts per process; ppo also refuses ``top_p`` / ``top_k``, which
    would make its rollouts off-policy."""

    temperature: float = Field(1.0, ge=0)        # 0 = greedy decoding
    top_p: float = Field(1.0, gt=0, le=1)        # nucleus sampling mass (1 = off)
    top_k: int = Field(0, ge=0)                  # keep the k most likely tokens (0 = off)
    max_new_tokens: int = Field(128, ge=1)       # response length cap
    max_prompt_tokens: int = Field(512, ge=8)    # longer prompts keep their last tokens
    batch_size: int = Field(16, ge=1)            # prompts per generate call (each yields k samples)


@dataclass
class Generation:
    """One sampled response."""

    text: str                 # decoded response, special tokens stripped
    n_tokens: int             # generated tokens up to and including end-of-turn
    finished: bool            # ended with the end-of-turn token (not cut by max_new_tokens)


@dataclass
class TokenBatch:
    """Token-level output of one generate call, for callers that train on it (PPO, RSFT).

    B = prompts x k, P = longest prompt, R = longest response.
    """

    prompt_ids: object        # LongTensor [B, P], left-padded with pad_token_id
    prompt_mask: object       # LongTensor [B, P], 1 on prompt tokens
    response_ids: object      # LongTensor [B, R], right-padded with pad_token_id after end-of-turn
    response_mask: object     # LongTensor [B, R], 1 on generated tokens up to and incl. end-of-turn
    finished: object          # BoolTensor [B], response ended with end-of-turn


def encode_prompts(tokenizer, prompts: list[list[dict]], max_prompt_tokens: int):
    """Left-padded ``(input_ids [B, P], attention_mask [B, P])`` of chat prompts (long ones keep their end)."""
    import torch

    rows = []
    for messages in prompts:
        ids = tokenizer(prompt_text(tokenizer, messages), add_special_tokens=False)["input_ids"]
        rows.append(ids[-max_prompt_tokens:])
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    return input_ids, mask


def _response_mask(response_ids, eos_id: int):
    """1 up to and including the first end-of-turn token of each row; [B, R] -> ([B, R], [B])."""
    import torch

    is_eos = response_ids == eos_id
    # tokens strictly after the first eos: cumulative eos count before this position > 0
    after = (torch.cumsum(is_eos.long(), dim=1) - is_eos.long()) > 0
    return (~after).long(), is_eos.any(dim=1)


def generate_tokens(model, tokenizer, prompts: list[list[dict]], spec: SamplingSpec, k: int = 1,
                    seed: int = 0) -> TokenBatch:
    """Sample ``k`` responses per prompt in ONE generate call (rows i*k .. i*k+k-1 are prompt i).

    Greedy decoding (``temperature == 0``) has one answer per prompt: it is generated once and
    repeated ``k`` times (transformers refuses ``num_return_sequences > 1`` without sampling)."""
    import torch

    input_ids, mask = encode_prompts(tokenizer, prompts, spec.max_prompt_tokens)
    input_ids, mask = input_ids.to(model.device), mask.to(model.device)
    eos_id = tokenizer.eos_token_id
    greedy = spec.temperature == 0
    kwargs = dict(do_sample=not greedy, max_new_tokens=spec.max_new_tokens, num_return_sequences=1 if greedy else k,
                  eos_token_id=eos_id, pad_token_id=tokenizer.pad_token_id, use_cache=True)
    if not greedy:
        kwargs.update(temperature=spec.temperature, top_p=spec.top_p, top_k=spec.top_k)
    was_training = model.training
    model.eval()
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.inference_mode():
        torch.manual_seed(seed)
        out = model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
    model.train(was_training)
    if greedy and k > 1:
        out = out.repeat_interleave(k, dim=0)
    width = input_ids.shape[1]
    response = out[:, width:]
    response_mask, finished = _response_mask(response, eos_id)
    response = response.masked_fill(response_mask == 0, tokenizer.pad_token_id)
    return TokenBatch(prompt_ids=input_ids.repeat_interleave(k, dim=0),
                      prompt_mask=mask.repeat_interleave(k, dim=0),
                      response_ids=response, response_mask=response_mask, finished=finished)


def plan_batches(prompts: list[list[dict]], batch_size: int) -> list[list[int]]:
    """Prompt indices of each generate call: sorted by length (less padding), ``batch_size`` a
    call. Batch ``b`` is sampled with seed ``seed + b``; a backend that spreads the batches over
    replicas (``jobs/ray_generation.py``) keeps both, so it samples exactly what one process does."""
    order = sorted(range(len(prompts)), key=lambda i: len(str(prompts[i])))
    return [order[start: start + batch_size] for start in range(0, len(order), batch_size)]


def generate_batch(model, tokenizer, prompts: list[list[dict]], spec: SamplingSpec, k: int,
                   seed: int) -> list[list[Generation]]:
    """``k`` decoded samples for each prompt of ONE generate call, in order."""
    batch = generate_tokens(model, tokenizer, prompts, spec, k=k, seed=seed)
    lengths = batch.response_mask.sum(dim=1).tolist()
    texts = tokenizer.batch_decode(batch.response_ids, skip_special_tokens=True)
    out: list[list[Generation]] = [[] for _ in prompts]
    for row, (text, n, fin) in enumerate(zip(texts, lengths, batch.finished.tolist())):
        out[row // k].append(Generation(text=text.strip(), n_tokens=int(n), finished=bool(fin)))
    return out


def generate_responses(model, tokenizer, prompts: list[list[dict]], spec: SamplingSpec, k: int = 1,
                       seed: int = 0, progress: bool = False, desc: str = "generating"
                       ) -> list[list[Generation]]:
    """``k`` decoded samples for each prompt, in input order; see the module docstring."""
    from tqdm.auto import tqdm

    results: list[list[Generation]] = [[] for _ in prompts]
    batches = plan_batches(prompts, spec.batch_size)
    for b, idx in enumerate(tqdm(batches, desc=desc, disable=not progress, unit="batch")):
        for i, gens in zip(idx, generate_batch(model, tokenizer, [prompts[i] for i in idx], spec, k, seed + b)):
            results[i] = gens
    return results
