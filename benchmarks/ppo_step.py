"""Time one PPO step on the tiny model (CPU): generation, scoring forwards, update; tokens/s; RSS.

    .venv/bin/python benchmarks/ppo_step.py                       # batch 8, 48 new tokens
    .venv/bin/python benchmarks/ppo_step.py --batch 16 --new-tokens 64 --epochs 2

Builds a tiny Qwen2 policy (byte-level BPE on a small synthetic corpus) and a reward model with
the same backbone in a temp dir, then runs ``--warmup`` untimed and ``--steps`` timed PPO steps
through the same functions the ``ppo`` stage uses. An untrained model rarely emits EOS, so
every response runs to ``--new-tokens``: the figures are for full-length responses.
Timings on a shared machine are noisy; the script prints the median and the spread.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYMPTOMS = ["headache", "cough", "fever", "stomach pain", "a rash", "back pain", "dizziness", "ear pain"]
ZH = ["头痛", "咳嗽", "发烧", "胃痛", "皮疹", "腰痛", "头晕", "耳朵痛"]


def corpus() -> tuple[list[str], list[list[dict]]]:
    texts, prompts = [], []
    for i, (en, zh) in enumerate(zip(SYMPTOMS, ZH)):
        for days in range(1, 9):
            q_en = f"Hello doctor, I have had {en} for {days} days. What should I do?"
            q_zh = f"医生您好，我{days}天来{zh}，该怎么办？"
            texts += [q_en, q_zh, f"How long has the {en} lasted? Please see a doctor.",
                      f"请问{zh}多久了？建议去医院就诊。"]
            prompts += [[{"role": "user", "content": q_en}], [{"role": "user", "content": q_zh}]]
    return texts, prompts


def build_models(tmp: Path, hidden: int, layers: int, vocab: int) -> tuple[Path, Path, list]:
    import torch
    from transformers import AutoModelForSequenceClassification

    from alignment.bootstrap import ModelSpec, TokenizerSpec, build_tiny_model, save_checkpoint, train_tokenizer

    texts, prompts = corpus()
    tokenizer = train_tokenizer(texts, TokenizerSpec(vocab_size=vocab))
    spec = ModelSpec(hidden_size=hidden, num_hidden_layers=layers, intermediate_size=2 * hidden)
    policy_dir = save_checkpoint(build_tiny_model(spec, tokenizer, seed=0), tokenizer, tmp / "policy")
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(policy_dir, num_labels=1,
                                                            pad_token_id=tokenizer.pad_token_id)
    rm_dir = save_checkpoint(rm, tokenizer, tmp / "rm")
    return policy_dir, rm_dir, prompts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=8, help="rollouts per step")
    p.add_argument("--mini", type=int, default=None, help="mini-batch size (default: = batch)")
    p.add_argument("--micro", type=int, default=8, help="micro-batch size (forward/backward rows)")
    p.add_argument("--epochs", type=int, default=1, help="PPO epochs per step")
    p.add_argument("--new-tokens", type=int, default=48, help="max new tokens per response")
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--scope", default="full", choices=["full", "last_n_layers", "lora"])
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from alignment.rl.experience import make_experience
    from alignment.rl.parallel import DistInfo
    from alignment.rl.ppo_config import PPOConfig
    from alignment.rl.ppo_update import ppo_update
    from alignment.rl.setup import build_ppo

    with tempfile.TemporaryDirectory() as tmp:
        policy_dir, rm_dir, prompts = build_models(Path(tmp), args.hidden, args.layers, args.vocab)
        cfg = PPOConfig(steps=args.warmup + args.steps, batch_size=args.batch,
                        mini_batch_size=args.mini or args.batch, micro_batch_size=args.micro,
                        ppo_epochs=args.epochs, scope={"mode": args.scope},
                        sampling={"max_new_tokens": args.new_tokens, "max_prompt_tokens": 128},
                        optim={"learning_rate": 1e-4, "critic_learning_rate": 1e-4})
        setup = build_ppo(cfg, str(policy_dir), str(rm_dir), DistInfo())
        rows = []
        for step in range(cfg.steps):
            batch = [prompts[(step * args.batch + i) % len(prompts)] for i in range(args.batch)]
            t0 = time.perf_counter()
            exp, sums, timings = make_experience(setup.models, batch, cfg=cfg, beta=0.05,
                                                 reward_stats=None, step=step + 1, gen_seed=step)
            t1 = time.perf_counter()
            ppo_update(exp, *setup.updaters, cfg, lr=1e-4, critic_lr=1e-4, step=step, seed=0, world_size=1)
            t2 = time.perf_counter()
            if step >= args.warmup:
                rows.append({**timings, "update_s": t2 - t1, "step_s": t2 - t0,
                             "tokens": sums["tokens"], "prompt_tokens": float(exp.batch.prompt_len * args.batch)})
        report(rows, args, torch.get_num_threads())


def report(rows: list[dict], args, threads: int) -> None:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(f"PPO step, tiny Qwen2 (hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}), "
          f"batch {args.batch}, mini {args.mini or args.batch}, micro {args.micro}, epochs {args.epochs}, "
          f"{args.new_tokens} new tokens, scope {args.scope}, torch threads {threads}, "
          f"{len(rows)} timed steps (median; min-max)")
    parts = [("generation", "generate_s"), ("score: policy log-probs", "policy_s"),
             ("score: reference log-probs", "reference_s"), ("score: critic values", "critic_s"),
             ("score: reward model", "reward_s"), ("update", "update_s"), ("total step", "step_s")]
    for label, key in parts:
        values = [r[key] for r in rows]
        print(f"  {label:<28} {med(key):7.3f} s   ({min(values):.3f}-{max(values):.3f})")
    tokens = med("tokens")
    print(f"  response tokens per step     {tokens:7.0f}")
    print(f"  generation tokens/s          {tokens / med('generate_s'):7.0f}")
    print(f"  step tokens/s (end to end)   {tokens / med('step_s'):7.0f}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS                     {rss_mb:7.0f} MB")


if __name__ == "__main__":
    main()
