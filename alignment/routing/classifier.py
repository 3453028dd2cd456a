"""A routing classifier on a causal-LM backbone, alone or multitask (MEDI-BERPT).

The classifier is ``AutoModelForSequenceClassification`` built from any causal-LM checkpoint
(the SFT policy, a bootstrap model, a hub model): the backbone reads the case as a chat prompt
(the patient's turns + the assistant header) and a new linear head scores every label at the
last real token (rows are right-padded; ``pad_token_id`` is set so the head finds it).

Multitask (``generation_weight > 0``): the checkpoint's causal LM is loaded too and its backbone
REPLACED by the classifier's, so one transformer serves both heads; each step adds
``generation_weight`` x the next-token loss of the doctor's first reply (assistant tokens only)
to the routing loss. MEDI-BERPT found that the generation task raised top-10-department accuracy
from 84% to 91%; the ``routing_gain`` stage measures the same question here.

Both runs of a comparison draw the same head initialisation and the same batches (one seed), so
their difference is the generation task, not the luck of the draw.

Shapes: classification batch ``input_ids [B, T]`` -> ``logits [B, L]`` (L labels); generation
batch ``input_ids [B, T']``, ``labels [B, T']`` (-100 off the reply).
"""

from __future__ import annotations

import math
import random
from contextlib import nullcontext
from dataclasses import dataclass

from alignment.chat import assistant_spans, prompt_text
from alignment.reward_scoring import encode_right_padded
from alignment.routing.cases import Cases
from alignment.stages.reward_listwise import adamw_and_schedule, optimizer_step
from alignment.stages.training_args import OptimSpec


@dataclass
class RouterModel:
    """The classifier and, in multitask training, the causal LM that shares its backbone."""

    classifier: object                  # PreTrainedModel for sequence classification
    lm: object | None = None            # PreTrainedModel for causal LM, backbone shared (multitask)

    def parameters(self) -> list:
        """Every trainable parameter once (shared and tied weights once)."""
        seen, out = set(), []
        for module in (self.classifier, self.lm):
            for p in module.parameters() if module is not None else ():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out


def build_router(backbone: str, tokenizer, labels: list[str], multitask: bool, device: str = "cpu",
                 seed: int = 0) -> RouterModel:
    """A classifier over ``labels`` on the checkpoint ``backbone`` (new head, drawn from ``seed``);
    with ``multitask`` also its causal LM, re-pointed at the classifier's backbone."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(seed)
    classifier = AutoModelForSequenceClassification.from_pretrained(
        backbone, num_labels=len(labels), pad_token_id=tokenizer.pad_token_id,
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
        dtype=torch.float32)
    lm = None
    if multitask:
        lm = AutoModelForCausalLM.from_pretrained(backbone, dtype=torch.float32)
        setattr(lm, lm.base_model_prefix, getattr(classifier, classifier.base_model_prefix))
        if getattr(lm.config, "tie_word_embeddings", False):
            lm.get_output_embeddings().weight = lm.get_input_embeddings().weight
        lm.to(device)
    return RouterModel(classifier.to(device), lm)


def classification_inputs(tokenizer, messages: list[list[dict]], max_length: int):
    """``(input_ids [B, T], attention_mask [B, T])`` of cases rendered as chat prompts; a long
    case keeps its last tokens (the assistant header the head reads from)."""
    return encode_right_padded(tokenizer, [prompt_text(tokenizer, m) for m in messages], max_length)


def generation_inputs(tokenizer, messages: list[list[dict]], replies: list[str], max_length: int):
    """``(input_ids, attention_mask, labels)`` [B, T] of case + doctor's reply; labels are the
    reply's tokens (end-of-turn included) and -100 elsewhere; long rows keep their last tokens."""
    import torch

    rows = [assistant_spans(tokenizer, list(m) + [{"role": "assistant", "content": r}])
            for m, r in zip(messages, replies)]
    rows = [(ids[-max_length:], mask[-max_length:]) for ids, mask in rows]
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (ids, mask) in enumerate(rows):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        attention[i, :len(ids)] = 1
        labels[i, :len(ids)] = torch.tensor([t if m else -100 for t, m in zip(ids, mask)])
    return input_ids, attention, labels


def total_steps(n_cases: int, optim: OptimSpec) -> int:
    """Optimizer steps: ``max_steps`` when set, else ``epochs`` passes over the cases."""
    per_step = optim.per_device_batch_size * optim.gradient_accumulation_steps
    return optim.max_steps if optim.max_steps > 0 else max(1, math.ceil(math.ceil(n_cases / per_step) * optim.epochs))


def train_router(model: RouterModel, tokenizer, cases: Cases, labels: list[str], optim: OptimSpec,
                 max_length: int, generation_weight: float, seed: int, device: str = "cpu",
                 progress: bool = False, log=None) -> dict:
    """Train on ``cases`` (``optim``'s optimizer, schedule, clipping and batch sizes); returns the
    routing and generation losses at the first and last step. ``log(scalars, step)`` gets
    ``train/loss``, ``train/routing_loss``, ``train/generation_loss``, ``train/learning_rate``."""
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    index = {label: i for i, label in enumerate(labels)}
    targets = torch.tensor([index[label] for label in cases.labels], dtype=torch.long)
    params = model.parameters()
    steps = total_steps(len(cases.labels), optim)
    opt, sched = adamw_and_schedule(params, optim, steps)
    bf16 = device.startswith("cuda") and optim.dtype in ("auto", "bfloat16")
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext
    rng, order, history = random.Random(seed), [], []
    per_step = optim.per_device_batch_size * optim.gradient_accumulation_steps
    model.classifier.train()
    for step in tqdm(range(1, steps + 1), desc="router", disable=not progress, unit="step"):
        while len(order) < per_step:
            perm = list(range(len(targets)))
            rng.shuffle(perm)
            order += perm
        chunk, order = order[:per_step], order[per_step:]
        sums = {"routing": 0.0, "generation": 0.0}
        for start in range(0, len(chunk), optim.per_device_batch_size):
            micro = chunk[start:start + optim.per_device_batch_size]
            share = len(micro) / len(chunk)
            with autocast():
                ids, mask = classification_inputs(tokenizer, [cases.messages[i] for i in micro], max_length)
                logits = model.classifier(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                loss = F.cross_entropy(logits.float(), targets[micro].to(device))
                sums["routing"] += loss.item() * share
                if model.lm is not None and generation_weight > 0:
                    gen = generation_inputs(tokenizer, [cases.messages[i] for i in micro],
                                            [cases.replies[i] for i in micro], max_length)
                    lm_loss = model.lm(input_ids=gen[0].to(device), attention_mask=gen[1].to(device),
                                       labels=gen[2].to(device)).loss
                    sums["generation"] += lm_loss.item() * share
                    loss = loss + generation_weight * lm_loss
            (loss * share).backward()
        lr = optimizer_step(opt, sched, params, optim.max_grad_norm)
        history.append(sums)
        if log is not None and (step % optim.logging_steps == 0 or step in (1, steps)):
            log({"train/loss": sums["routing"] + generation_weight * sums["generation"],
                 "train/routing_loss": sums["routing"], "train/generation_loss": sums["generation"],
                 "train/learning_rate": lr}, step)
    model.classifier.eval()
    out = {"steps": steps, "routing_loss_start": history[0]["routing"], "routing_loss_end": history[-1]["routing"]}
    if model.lm is not None and generation_weight > 0:
        out |= {"generation_loss_start": history[0]["generation"], "generation_loss_end": history[-1]["generation"]}
    return out


def rank_labels(classifier, tokenizer, messages: list[list[dict]], max_length: int, batch_size: int = 32,
                device: str = "cpu") -> tuple[list[list[str]], list[list[float]]]:
    """Every case's labels ranked by the classifier (best first) and their probabilities."""
    import torch

    labels = [classifier.config.id2label[i] for i in range(classifier.config.num_labels)]
    ranked, probs = [], []
    classifier.eval()
    with torch.inference_mode():
        for start in range(0, len(messages), batch_size):
            ids, mask = classification_inputs(tokenizer, messages[start:start + batch_size], max_length)
            p = classifier(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().softmax(-1)
            values, order = p.sort(dim=-1, descending=True)
            ranked += [[labels[j] for j in row] for row in order.tolist()]
            probs += values.tolist()
    return ranked, probs
