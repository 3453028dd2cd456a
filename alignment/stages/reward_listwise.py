"""Listwise reward-model training on ranked tuples with the Plackett-Luce loss.

ChiMed-GPT ranked four answers per question (doctor > GPT-4 > GPT-3.5 > weak model) and trained on
the adjacent pairs. The listwise alternative uses the whole ranking at once: under Plackett-Luce
the probability of a ranking is the product, over positions, of "this item is picked first among
the items not yet placed"::

    log P(ranking) = sum_i [ s_i - logsumexp_{j : rank_j >= rank_i} s_j ]

Ties (equal ranks) share their denominator set (Breslow's approximation), so tied items are not
ordered against each other. The training loop is a plain AdamW loop (trl's RewardTrainer is
pairwise only); it runs in one process.
"""

from __future__ import annotations

import math
import random

from alignment.reward_scoring import encode_right_padded, render_conversation
from alignment.stages.training_args import OptimSpec


def plackett_luce_loss(scores, ranks, valid):
    """Mean negative Plackett-Luce log-likelihood of the rankings.

    scores: float [B, K] (reward of each response), ranks: long [B, K] (0 = best, ties equal),
    valid: bool [B, K] (False on padding when tuples have fewer than K responses).
    Returns a scalar: -(1/B) * sum_b sum_{i valid} [s_bi - logsumexp_{j valid, r_bj >= r_bi} s_bj].
    """
    import torch

    neg_inf = torch.finfo(scores.dtype).min
    # at_or_below[b, i, j]: item j is still "unplaced" when item i is picked
    at_or_below = (ranks.unsqueeze(1) >= ranks.unsqueeze(2)) & valid.unsqueeze(1) & valid.unsqueeze(2)
    expanded = scores.unsqueeze(1).expand(-1, scores.shape[1], -1).masked_fill(~at_or_below, neg_inf)
    log_denominator = torch.logsumexp(expanded, dim=2)                      # [B, K]
    terms = (scores - log_denominator).masked_fill(~valid, 0.0)
    return -terms.sum(dim=1).mean()


def _batch_tensors(tokenizer, tuples: list[dict], max_length: int):
    """Token tensors of every response of ``tuples`` + ranks/valid [B, K] to put scores back."""
    import torch

    k = max(len(t["responses"]) for t in tuples)
    texts, slots = [], []
    ranks = torch.zeros((len(tuples), k), dtype=torch.long)
    valid = torch.zeros((len(tuples), k), dtype=torch.bool)
    for b, t in enumerate(tuples):
        for i, (resp, rank) in enumerate(zip(t["responses"], t["ranks"])):
            texts.append(render_conversation(tokenizer, t["messages"], resp))
            slots.append((b, i))
            ranks[b, i], valid[b, i] = rank, True
    input_ids, mask = encode_right_padded(tokenizer, texts, max_length)
    return input_ids, mask, slots, ranks, valid


def _scheduler(optimizer, optim: OptimSpec, total_steps: int):
    from transformers import get_scheduler

    extra = {"min_lr_rate": optim.min_lr_ratio} if optim.lr_scheduler == "cosine_with_min_lr" else None
    return get_scheduler(optim.lr_scheduler, optimizer, num_warmup_steps=math.ceil(optim.warmup_ratio * total_steps),
                         num_training_steps=total_steps, scheduler_specific_kwargs=extra)


def adamw_and_schedule(params: list, optim: OptimSpec, total_steps: int):
    """(the optimizer ``optim`` names over ``params``, its schedule): AdamW with ``optim``'s betas,
    epsilon and weight decay, or plain SGD (``optimizer: sgd``)."""
    import torch

    if optim.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=optim.learning_rate, weight_decay=optim.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=optim.learning_rate, betas=(optim.adam_beta1, optim.adam_beta2),
                                eps=optim.adam_epsilon, weight_decay=optim.weight_decay)
    return opt, _scheduler(opt, optim, total_steps)


def optimizer_step(opt, sched, params: list, max_grad_norm: float) -> float:
    """Clip (when ``max_grad_norm`` > 0), step, advance the schedule, zero the gradients; returns
    the learning rate the step used."""
    import torch

    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    lr = sched.get_last_lr()[0]
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return lr


def train_listwise(model, tokenizer, tuples: list[dict], optim: OptimSpec, max_length: int, seed: int,
                   progress: bool = False, log=None) -> dict:
    """Train ``model`` (1-label sequence classifier) on ranked ``tuples``; return loss figures.

    A tuple is ``{"messages": prompt, "responses": [...], "ranks": [...]}``. One optimizer step
    takes ``per_device_batch_size * gradient_accumulation_steps`` tuples. ``log(scalars, step)``
    (e.g. ``Tracker.log``) receives ``train/loss`` and ``train/learning_rate`` every
    ``optim.logging_steps`` steps and at the last step.
    """
    import torch
    from tqdm.auto import tqdm

    step_size = optim.per_device_batch_size * optim.gradient_accumulation_steps
    steps_per_epoch = math.ceil(len(tuples) / step_size)
    total = optim.max_steps if optim.max_steps > 0 else math.ceil(steps_per_epoch * optim.epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    opt, sched = adamw_and_schedule(params, optim, total)
    rng = random.Random(seed)
    order: list[int] = []
    losses = []
    model.train()
    for _ in tqdm(range(total), desc="listwise RM", disable=not progress, unit="step"):
        if len(order) < step_size:
            perm = list(range(len(tuples)))
            rng.shuffle(perm)
            order += perm
        chunk, order = order[:step_size], order[step_size:]
        step_loss = 0.0
        for start in range(0, len(chunk), optim.per_device_batch_size):
            micro = [tuples[i] for i in chunk[start: start + optim.per_device_batch_size]]
            input_ids, mask, slots, ranks, valid = _batch_tensors(tokenizer, micro, max_length)
            logits = model(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)).logits[:, 0]
            scores = torch.zeros(ranks.shape, dtype=logits.dtype, device=logits.device)
            rows, cols = zip(*slots)
            scores = scores.index_put((torch.tensor(rows), torch.tensor(cols)), logits)
            # weight each micro-batch by its share of the step's tuples: the step loss is a mean over tuples
            loss = plackett_luce_loss(scores, ranks.to(logits.device), valid.to(logits.device)) * len(micro) / len(chunk)
            loss.backward()
            step_loss += loss.item()
        lr = optimizer_step(opt, sched, params, optim.max_grad_norm)
        losses.append(step_loss)
        step = len(losses)
        if log is not None and (step % optim.logging_steps == 0 or step in (1, total)):
            log({"train/loss": step_loss, "train/learning_rate": lr}, step)
    model.eval()
    return {"train_loss_start": losses[0] if losses else None, "train_loss_end": losses[-1] if losses else None,
            "steps": len(losses)}
