"""How likely a model finds a given reply: the negative log-likelihood of its tokens.

Perplexity on held-out consultations (MedDialog's first figure) is exp(sum NLL / sum tokens)
over the doctors' replies, each scored given its history::

    rows = reply_nll(model, tokenizer, [p["messages"] for p in prompts], references, max_length=512)
    rows[i]    # (NLL of reply i in nats, its number of tokens)

The tokens of a reply are the ones the chat template marks as the assistant's (its content and
end-of-turn, what SFT trains on: ``alignment.chat.assistant_spans``), of the LAST assistant turn
only. A conversation longer than ``max_length`` keeps its last tokens (the reply and the history
closest to it). Two models' perplexities compare only when they share a tokenizer.
"""

from __future__ import annotations

from alignment.chat import assistant_spans


def last_turn_mask(mask: list[int]) -> list[int]:
    """``mask`` with only its last run of ones kept: the final assistant turn's tokens."""
    out = [0] * len(mask)
    i = len(mask) - 1
    while i >= 0 and not mask[i]:
        i -= 1
    while i >= 0 and mask[i]:
        out[i] = 1
        i -= 1
    return out


def reply_rows(tokenizer, histories: list[list[dict]], replies: list[str], max_length: int) -> list[tuple]:
    """Per conversation: ``(token ids, target mask)`` of history + reply, cut to the last ``max_length``.

    Raises ValueError when the chat template marks no assistant token (it lacks ``{% generation %}``)."""
    rows = []
    for history, reply in zip(histories, replies):
        ids, mask = assistant_spans(tokenizer, list(history) + [{"role": "assistant", "content": reply}])
        target = last_turn_mask(mask)
        if not any(target):
            raise ValueError("the chat template marks no assistant tokens ({% generation %} missing): "
                             "reply likelihoods need them, as assistant-only SFT does")
        rows.append((ids[-max_length:], target[-max_length:]))
    return rows


def reply_nll(model, tokenizer, histories: list[list[dict]], replies: list[str], max_length: int = 1024,
              batch_size: int = 16, progress: bool = False) -> list[tuple[float, int]]:
    """``(NLL in nats, tokens)`` of each reply given its history (see the module docstring).

    A reply whose tokens were all cut by ``max_length`` gives ``(0.0, 0)``."""
    import torch
    from tqdm.auto import tqdm

    rows = reply_rows(tokenizer, histories, replies, max_length)
    out: list[tuple[float, int]] = []
    was_training = model.training
    model.eval()
    starts = range(0, len(rows), batch_size)
    for start in tqdm(starts, desc="reply likelihood", disable=not progress, total=len(starts)):
        batch = rows[start: start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)        # [B, L], right-padded
        attention = torch.zeros((len(batch), width), dtype=torch.long)             # [B, L]
        target = torch.zeros((len(batch), width), dtype=torch.float)               # [B, L]
        for i, (ids, mask) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention[i, : len(ids)] = 1
            target[i, : len(ids)] = torch.tensor(mask, dtype=torch.float)
        input_ids, attention, target = (t.to(model.device) for t in (input_ids, attention, target))
        with torch.inference_mode():
            logits = model(input_ids=input_ids, attention_mask=attention).logits    # [B, L, V]
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)                   # [B, L-1, V] predicts 1..L-1
        token_logp = logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)           # [B, L-1]
        mask = target[:, 1:]                                                        # [B, L-1]
        nll = -(token_logp * mask).sum(dim=1)                                       # [B]
        out += [(float(a), int(b)) for a, b in zip(nll.tolist(), mask.sum(dim=1).tolist())]
    model.train(was_training)
    return out
