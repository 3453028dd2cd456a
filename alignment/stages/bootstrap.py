"""Stage ``bootstrap``: the embedded default model, built from the job's own corpus.

Input ``data`` (the data stage's directory): the tokenizer is trained on the text of
``sft/train.parquet`` (every turn) and, when present and ``use_pretrain`` is on,
``pretrain/train.parquet``. Only the train split is read, so validation and test text never
shapes the tokenizer. Output: ``out/model/`` (tokenizer, chat template, untrained tiny causal LM).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from alignment.bootstrap import ModelSpec, TokenizerSpec, bootstrap
from alignment.stages.inputs import Quarantine, read_conversations, read_texts, split_file
from medalign.config import StrictModel
from medalign.stage import Input, StageContext

NAME = "bootstrap"
INPUTS = {"data": Input(("data",), "data stage directory: its sft/ (and pretrain/) text trains the tokenizer",
                    reads=("sft",))}


class BootstrapStageConfig(StrictModel):
    """Tokenizer and model shape of the tiny default model."""

    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)  # byte-level BPE settings
    model: ModelSpec = Field(default_factory=ModelSpec)              # architecture and sizes
    use_pretrain: bool = True            # also train the tokenizer on pretrain/train.parquet if present
    seed: int | None = None              # weight-init seed (None: the job seed)


Config = BootstrapStageConfig


def corpus_texts(data_dir: str | Path, use_pretrain: bool, quarantine: Quarantine) -> list[str]:
    """Every turn of the SFT train split, then the pretraining train texts (fixed order)."""
    texts = [turn["content"] for row in read_conversations(split_file(data_dir, "sft", "train"), quarantine)
             for turn in row["messages"]]
    pretrain = Path(data_dir) / "pretrain" / "train.parquet"
    if use_pretrain and pretrain.is_file():
        texts.extend(read_texts(pretrain, quarantine))
    return texts


def _progress(texts: list[str], enabled: bool) -> Iterator[str]:
    from tqdm.auto import tqdm

    yield from tqdm(texts, desc="tokenizer corpus", unit="text", disable=not enabled)


def run(cfg: BootstrapStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    quarantine = Quarantine()
    texts = corpus_texts(inputs["data"], cfg.use_pretrain, quarantine)
    if not texts:
        raise ValueError(f"bootstrap: no text to train a tokenizer on in {inputs['data']}")
    seed = ctx.seed if cfg.seed is None else cfg.seed
    summary = bootstrap(_progress(texts, ctx.progress), Path(out) / "model", cfg.tokenizer, cfg.model, seed)
    quarantine.write(Path(out))
    ctx.logger.info("bootstrap: %s model with %d parameters, vocab %d, from %d texts",
                    summary["architecture"], summary["parameters"], summary["vocab_size"], len(texts))
    return {**summary, "corpus_texts": len(texts), "corpus_chars": sum(len(t) for t in texts),
            "quarantined": len(quarantine)}
