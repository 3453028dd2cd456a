"""Rollouts: sample responses to chat prompts and score them token by token.

Layout of a rollout batch (B rows, P prompt columns, R response columns)::

    sequences      [B, P + R]   <pad>..<pad> prompt tokens | response tokens <eos> <pad>..<pad>
    attention_mask [B, P + R]   0 ........ 0 1 .......... 1 | 1 .................. 1  0 ...... 0
    response_mask  [B, R]                                    | 1 .................. 1  0 ...... 0

Prompts are LEFT padded so every prompt ends at column P and generation (with the KV cache)
appends to all rows at once; responses are RIGHT padded after their first EOS (EOS included in
the mask: choosing to stop is an action the policy takes and is rewarded for). Position ids count
real tokens only (``cumsum(mask) - 1``), exactly as ``generate`` does, so a re-scoring forward
pass sees the same positions as sampling did.

Response token ``t`` (column ``P + t``) is predicted by the logits at column ``P + t - 1``; the
critic's value ``V(s_t)`` of the state before it is read at the same column.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from alignment.rl.losses import entropy_from_logits, token_logprobs

__all__ = ["RolloutBatch", "sample_rollout", "concat_rollouts", "position_ids", "policy_logprobs",
           "ValueModel", "decode_responses"]


@dataclass
class RolloutBatch:
    sequences: torch.Tensor       # [B, P + R]
    attention_mask: torch.Tensor  # [B, P + R]
    response_mask: torch.Tensor   # [B, R] float, 1 for response tokens up to and including EOS
    prompt_len: int               # P
    ended: torch.Tensor           # [B] bool: the response ended with EOS (not cut at max length)

    @property
    def responses(self) -> torch.Tensor:
        """[B, R] response token ids (pad after EOS)."""
        return self.sequences[:, self.prompt_len:]

    def rows(self, index: torch.Tensor | slice) -> RolloutBatch:
        """The sub-batch of the given rows (same P and R)."""
        return RolloutBatch(self.sequences[index], self.attention_mask[index],
                            self.response_mask[index], self.prompt_len, self.ended[index])


def sample_rollout(model, tokenizer, prompts: list[list[dict]], *, max_new_tokens: int,
                   max_prompt_tokens: int, temperature: float, seed: int) -> RolloutBatch:
    """Sample one response per chat prompt (left padding, KV cache) as a :class:`RolloutBatch`.

    Pure temperature sampling (no top-k / top-p): PPO's log-probs are those of
    ``softmax(logits / temperature)``, so truncating the distribution while sampling would make
    the rollouts off-policy. The sampling RNG is seeded with ``seed`` (the caller derives it from
    the run seed, the step and the prompts' position in the step's batch, so a resumed run, and a
    run on another number of processes, samples the same tokens).
    Under ZeRO-3 transformers turns on ``synced_gpus`` by itself (ranks keep stepping together).
    """
    from alignment.generation import SamplingSpec, generate_tokens

    if not temperature > 0:
        raise ValueError(f"PPO needs temperature > 0 (sampling), got {temperature}")
    spec = SamplingSpec(temperature=temperature, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens,
                        max_prompt_tokens=max_prompt_tokens, batch_size=len(prompts))
    tokens = generate_tokens(model, tokenizer, prompts, spec, k=1, seed=seed)
    # generate ran under inference_mode: clone into normal tensors, which autograd may save
    prompt_ids, prompt_mask = tokens.prompt_ids.clone(), tokens.prompt_mask.clone()
    response_ids, response_mask = tokens.response_ids.clone(), tokens.response_mask.clone()
    return RolloutBatch(
        sequences=torch.cat([prompt_ids, response_ids], dim=1),
        attention_mask=torch.cat([prompt_mask, response_mask.long()], dim=1),
        response_mask=response_mask.float(), prompt_len=prompt_ids.shape[1],
        ended=tokens.finished.clone())


def concat_rollouts(batches: list[RolloutBatch], pad_id: int) -> RolloutBatch:
    """Stack rollouts of several generate calls: prompts left-padded to the longest ``P``,
    responses right-padded to the longest ``R`` (padding has mask 0, so every row's tokens,
    positions and masks mean what they meant in its own batch)."""
    if len(batches) == 1:
        return batches[0]
    p_max = max(b.prompt_len for b in batches)
    r_max = max(b.responses.shape[1] for b in batches)
    seqs, attn, resp = [], [], []
    for b in batches:
        left, right = p_max - b.prompt_len, r_max - b.responses.shape[1]
        seqs.append(torch.nn.functional.pad(b.sequences, (left, right), value=pad_id))
        attn.append(torch.nn.functional.pad(b.attention_mask, (left, right), value=0))
        resp.append(torch.nn.functional.pad(b.response_mask, (0, right), value=0.0))
    return RolloutBatch(torch.cat(seqs), torch.cat(attn), torch.cat(resp), p_max,
                        torch.cat([b.ended for b in batches]))


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count only real tokens, as ``generate`` computes them. ``[B, L]``."""
    pos = attention_mask.long().cumsum(-1) - 1
    return pos.masked_fill(attention_mask == 0, 0)


def policy_logprobs(model, batch: RolloutBatch, temperature: float,
                    with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs ``[B, R]`` of the response tokens under ``softmax(logits / T)`` (+ entropy ``[B, R]``).

    Gradients flow when called outside ``no_grad``. Padding columns hold meaningless values; use
    ``batch.response_mask``.
    """
    # logits only where they predict a response token: columns P-1 .. P+R-2 (the last R+1
    # columns minus the final one), not over the whole prompt
    n_response = batch.responses.shape[1]
    out = model(input_ids=batch.sequences, attention_mask=batch.attention_mask,
                position_ids=position_ids(batch.attention_mask), use_cache=False,
                logits_to_keep=n_response + 1)
    logits = out.logits[:, :-1, :] / temperature
    logp = token_logprobs(logits, batch.responses)
    entropy = entropy_from_logits(logits) if with_entropy else None
    return logp, entropy


class ValueModel(nn.Module):
    """A critic built from a sequence classifier (e.g. the reward model): per-token values.

    The reward model's own ``forward`` pools its score head at the last token; the critic needs
    the head applied at EVERY position, so this calls the backbone and the ``score`` head
    directly. ``forward`` returns ``[B, R]`` values ``V(s_t)`` for the response tokens.
    Works with a plain ``*ForSequenceClassification`` and with a PEFT-wrapped one.
    """

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier
        base = classifier.get_base_model() if hasattr(classifier, "get_base_model") else classifier
        if not hasattr(base, "score") or not hasattr(base, base.base_model_prefix):
            raise TypeError(f"{type(base).__name__} has no score head / backbone; the critic must be "
                            "initialised from a *ForSequenceClassification reward model")
        if base.score.out_features != 1:
            raise ValueError(f"the critic needs a 1-label score head, got {base.score.out_features}")
        self._base = [base]  # in a list: not registered twice as a submodule

    def forward(self, sequences: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int) -> torch.Tensor:
        base = self._base[0]
        backbone = getattr(base, base.base_model_prefix)
        hidden = backbone(input_ids=sequences, attention_mask=attention_mask,
                          position_ids=position_ids(attention_mask), use_cache=False).last_hidden_state
        values = base.score(hidden[:, prompt_len - 1:-1, :]).squeeze(-1)
        return values.float()


def decode_responses(tokenizer, batch: RolloutBatch) -> list[str]:
    """Response texts without special tokens (EOS, padding)."""
    out = []
    for ids, mask in zip(batch.responses, batch.response_mask):
        out.append(tokenizer.decode(ids[mask.bool()].tolist(), skip_special_tokens=True))
    return out
