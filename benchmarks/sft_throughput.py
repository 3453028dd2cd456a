"""SFT throughput on the tiny model: trl SFTTrainer with and without packing vs a bare loop.

    .venv/bin/python benchmarks/sft_throughput.py                       # builds data + model itself
    .venv/bin/python benchmarks/sft_throughput.py --data D --model M --steps 60 --threads 2

Prints trained tokens per second (non-padding tokens that went through forward + backward +
AdamW step) for:

* ``trl``          SFTTrainer, assistant-only loss, padded batches (what the sft stage runs)
* ``trl_packed``   SFTTrainer with BFD packing into rows of ``--max-length`` tokens
* ``bare_padded``  a plain torch loop on the same padded batches (no Trainer around it)
* ``bare_packed``  a plain torch loop on full rows of ``--max-length`` tokens: the ceiling

Same model, same examples, same batch size. Figures on a shared machine are noisy: run it twice.
Without ``--data``/``--model`` it writes the quickstart data (600 synthetic consultations) and
bootstraps the default tiny model into ``--workdir`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _prepare(workdir: Path) -> tuple[Path, Path]:
    data, boot = workdir / "data", workdir / "boot"
    medalign = [sys.executable, "-m", "medalign.cli"]
    if not (data / "sft" / "train.parquet").is_file():
        subprocess.run(medalign + ["data", "build", "quickstart", "--synthetic", "600", "--out", str(data),
                                   "--quiet"], check=True)
    if not (boot / "model" / "config.json").is_file():
        subprocess.run(medalign + ["bootstrap", "--data", str(data), "--out", str(boot)], check=True,
                       stdout=subprocess.DEVNULL)
    return data, boot / "model"


def _rows(data: Path, n: int) -> list[dict]:
    import pyarrow.parquet as pq

    return [{"messages": r["messages"]} for r in pq.read_table(data / "sft" / "train.parquet").to_pylist()[:n]]


def run_trl(model_dir: Path, rows: list[dict], steps: int, batch: int, max_length: int, packing: bool,
            out: Path) -> dict:
    from alignment.stages.sft import SFTStageConfig, train_sft
    from medalign.stage import StageContext

    cfg = SFTStageConfig(optim={"learning_rate": 1e-3, "max_steps": steps, "per_device_batch_size": batch,
                                "logging_steps": steps}, max_length=max_length, packing=packing,
                         eval_split=None, keep="last")
    m = train_sft(str(model_dir), rows, [], cfg, out, StageContext(progress=False))
    return {"tokens": m["trained_tokens"], "seconds": m["train_runtime_s"], "steps": m["steps"]}


def _bare_batches(tokenizer, rows, batch: int, max_length: int, packed: bool):
    import torch

    from alignment.chat import assistant_spans

    encoded = [assistant_spans(tokenizer, r["messages"]) for r in rows]
    if packed:  # concatenate everything, cut into full rows: no padding at all
        ids = [t for toks, _ in encoded for t in toks]
        n_rows = len(ids) // max_length
        flat = torch.tensor(ids[: n_rows * max_length]).view(n_rows, max_length)
        for i in range(0, n_rows - batch + 1, batch):
            x = flat[i: i + batch]
            yield x, torch.ones_like(x), x.clone()
        return
    for i in range(0, len(encoded) - batch + 1, batch):
        chunk = [(t[:max_length], m[:max_length]) for t, m in encoded[i: i + batch]]
        width = max(len(t) for t, _ in chunk)
        x = torch.full((batch, width), tokenizer.pad_token_id)
        attn = torch.zeros((batch, width), dtype=torch.long)
        labels = torch.full((batch, width), -100)
        for r, (t, m) in enumerate(chunk):
            x[r, : len(t)], attn[r, : len(t)] = torch.tensor(t), 1
            labels[r, : len(t)] = torch.tensor([tok if keep else -100 for tok, keep in zip(t, m)])
        yield x, attn, labels


def run_bare(model_dir: Path, rows: list[dict], steps: int, batch: int, max_length: int, packed: bool) -> dict:
    """Forward + backward + AdamW step on pre-built batches; tokens = attention-mask ones."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = list(_bare_batches(tok, rows, batch, max_length, packed))
    if not batches:
        raise ValueError("not enough data for one batch")
    tokens, start = 0, None
    for step in range(steps + 2):
        if step == 2:  # two warm-up steps, not timed
            start = time.perf_counter()
        x, attn, labels = batches[step % len(batches)]
        loss = model(input_ids=x, attention_mask=attn, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= 2:
            tokens += int(attn.sum())
    return {"tokens": tokens, "seconds": time.perf_counter() - start, "steps": steps}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="data stage directory (sft/train.parquet)")
    p.add_argument("--model", type=Path, help="tiny model checkpoint")
    p.add_argument("--workdir", type=Path, default=Path("runs/benchmarks/sft_throughput"))
    p.add_argument("--steps", type=int, default=40, help="timed optimizer steps per mode")
    p.add_argument("--batch", type=int, default=16, help="examples (or packed rows) per step")
    p.add_argument("--max-length", type=int, default=512, help="truncation / packed row length")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--modes", default="trl,trl_packed,bare_padded,bare_packed")
    a = p.parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    data, model = (a.data, a.model) if a.data and a.model else _prepare(a.workdir)
    rows = _rows(data, 4000)
    results = {}
    for mode in a.modes.split(","):
        if mode.startswith("trl"):
            r = run_trl(model, rows, a.steps, a.batch, a.max_length, mode == "trl_packed", a.workdir / mode)
        else:
            r = run_bare(model, rows, a.steps, a.batch, a.max_length, mode == "bare_packed")
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        results[mode] = r
        print(f"{mode:12s} {r['tokens_per_s']:10.0f} tokens/s  ({r['tokens']} tokens, {r['steps']} steps, "
              f"{r['seconds']:.1f} s)", flush=True)
    print(json.dumps({"threads": torch.get_num_threads(), "batch": a.batch, "max_length": a.max_length,
                      "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
