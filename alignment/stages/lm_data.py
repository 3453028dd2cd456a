"""Token rows and batches for causal-LM training (the sft, pretrain and rsft stages).

    dataset = lm_dataset(tokenizer, rows, max_length=512, packing=False, assistant_only_loss=True)
    collate = LMCollator(tokenizer.pad_token_id)
    batch = collate([dataset[0], dataset[1]])   # input_ids, labels, attention_mask or position_ids

The same preparation trl's ``SFTTrainer`` did (so the same losses on the same data), minus the
parts that cost the most on a CPU (see :mod:`alignment.stages.sft`):

* A conversation ``{"messages": [...]}`` is rendered with the tokenizer's chat template; with
  ``assistant_only_loss`` its labels are its tokens where the template's ``{% generation %}``
  mask says "assistant" (the answer and its end-of-turn) and ``-100`` elsewhere.
* A text ``{"text": ...}`` (pretraining) gets the end-of-turn token appended when it lacks it,
  and every token is a label.
* Without packing, an example longer than ``max_length`` keeps its first ``max_length`` tokens;
  an example left with no label is dropped (it carries no loss).
* With packing, trl's best-fit-decreasing packer (:func:`trl.pack_dataset`, ``bfd``) fills rows of
  at most ``max_length`` tokens with whole examples (longer ones are cut to ``max_length``); each
  row remembers its examples' lengths (``seq_lengths``).

Batches (:class:`LMCollator`) are rows right-padded to the longest row of the batch:

* padded examples: ``input_ids``, ``attention_mask``, ``labels`` [B, T];
* packed rows: ``input_ids``, ``position_ids``, ``labels`` [B, T] and NO attention mask. The
  positions restart at 0 for every example of a row, and transformers turns such position ids
  into a block-diagonal causal mask [B, 1, T, T] (``masking_utils.find_packed_sequence_indices``),
  so an example never attends to the one before it in its row. The first token of each example
  has label ``-100``: it would otherwise be predicted from the previous example's last token.
  The padding at the end of a row gets positions 0, 1, ... of its own (a block nobody reads).
  This needs the model's KV cache off (``use_cache=False``): with a cache transformers builds a
  plain causal mask. trl flattened a whole batch into ONE row of B x T tokens, whose mask is
  (B x T)^2: 16 rows of 512 tokens made a 8192 x 8192 mask per forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Dataset

IGNORE_INDEX = -100   # label of a token that is not a target (transformers' and torch's convention)


def tokenize_example(tokenizer, row: dict, assistant_only_loss: bool) -> dict[str, list[int]]:
    """``{"input_ids", "labels"}`` of one conversation (``messages``) or text (``text``).

    Raises ValueError when ``assistant_only_loss`` leaves a conversation without any label (the
    chat template lacks ``{% generation %}`` markers, or the conversation has no assistant turn).
    """
    if "messages" in row:
        enc = tokenizer.apply_chat_template(list(row["messages"]), tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=assistant_only_loss)
        ids = list(enc["input_ids"])
        if not assistant_only_loss:
            return {"input_ids": ids, "labels": list(ids)}
        mask = enc["assistant_masks"]
        if 1 not in mask:
            raise ValueError("assistant_only_loss: a conversation has no assistant token to learn; the chat "
                             "template needs {% generation %} around the assistant turns, or set "
                             "assistant_only_loss: false")
        return {"input_ids": ids, "labels": [t if keep else IGNORE_INDEX for t, keep in zip(ids, mask)]}
    text = row["text"]
    if not text.endswith(tokenizer.eos_token):
        text += tokenizer.eos_token
    ids = list(tokenizer(text=text)["input_ids"])
    return {"input_ids": ids, "labels": list(ids)}


def lm_dataset(tokenizer, rows: list[dict], max_length: int, packing: bool,
               assistant_only_loss: bool) -> Dataset:
    """A ``datasets.Dataset`` of training rows (columns above) for :class:`LMCollator`.

    ``rows``: ``{"messages": [...]}`` conversations or ``{"text": ...}`` documents.
    """
    from datasets import Dataset

    examples = [tokenize_example(tokenizer, r, assistant_only_loss) for r in rows]
    if packing:
        from trl import pack_dataset

        columns = {"input_ids": [e["input_ids"] for e in examples], "labels": [e["labels"] for e in examples]}
        return pack_dataset(Dataset.from_dict(columns), max_length, strategy="bfd")
    kept = [{"input_ids": e["input_ids"][:max_length], "labels": e["labels"][:max_length]} for e in examples]
    kept = [e for e in kept if any(t != IGNORE_INDEX for t in e["labels"])]
    return Dataset.from_dict({"input_ids": [e["input_ids"] for e in kept], "labels": [e["labels"] for e in kept]})


def packed_position_ids(seq_lengths: list[int], width: int):
    """Positions [width] that restart at 0 for every example (and for the padding after them).

    ``[3, 2]``, width 7 -> ``[0, 1, 2, 0, 1, 0, 1]``.
    """
    import torch

    pad = width - sum(seq_lengths)
    return torch.cat([torch.arange(n) for n in [*seq_lengths, pad] if n > 0])


@dataclass
class LMCollator:
    """Collate :func:`lm_dataset` rows into a batch (packed rows when they have ``seq_lengths``)."""

    pad_token_id: int

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        width = max(len(e["input_ids"]) for e in examples)
        input_ids = torch.full((len(examples), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        for row, e in enumerate(examples):
            n = len(e["input_ids"])
            input_ids[row, :n] = torch.as_tensor(e["input_ids"], dtype=torch.long)
            labels[row, :n] = torch.as_tensor(e["labels"], dtype=torch.long)
        if "seq_lengths" not in examples[0]:
            attention_mask = (torch.arange(width) < torch.tensor([len(e["input_ids"]) for e in examples])[:, None])
            return {"input_ids": input_ids, "attention_mask": attention_mask.long(), "labels": labels}
        position_ids = torch.stack([packed_position_ids(list(e["seq_lengths"]), width) for e in examples])
        labels[position_ids == 0] = IGNORE_INDEX   # an example's first token is not predicted from the one before
        return {"input_ids": input_ids, "position_ids": position_ids, "labels": labels}
