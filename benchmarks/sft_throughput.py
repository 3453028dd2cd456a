"""Training throughput of the sft, reward_model and pretrain stages next to a bare loop, same batches.

    python benchmarks/sft_throughput.py                          # builds data + model, every pair, 3 repeats
    python benchmarks/sft_throughput.py --threads 1 --repeats 5 --pairs sft_padded,sft_packed
    python benchmarks/sft_throughput.py --sizes                  # + tokens/s by model size and thread count
    python benchmarks/sft_throughput.py --with-trl               # + trl's SFTTrainer (what sft ran before)

Pairs (the stage's own training call vs a bare loop on the batches that call trained on):

* ``sft_padded``    the sft stage (assistant-only loss, right-padded batches) | bare padded
* ``sft_packed``    the sft stage with ``packing: true`` (block-diagonal masks) | bare packed
* ``reward_model``  the reward_model stage's pairwise training (trl RewardTrainer) | bare Bradley-Terry
* ``pretrain``      the pretrain stage (packed plain text) | bare packed

The bare loop is forward + backward + AdamW step on the batches the stage's data loader yields
(same examples, same order, same padding, same masks), with the same model, in the same process,
so the same torch thread count. Trained tokens are the non-padding tokens of the batches. The
first ``--warmup`` steps of each side are not timed. Each pair runs ``--repeats`` times,
interleaved (stage then bare, then bare then stage, ...), and prints the median ratio and its
spread, per wall second and per CPU second of the process (the CPU-time ratio stays steady when
other work takes the cores): on a shared machine the ratios are what to trust, not the absolute
figures. With 2 threads on a shared machine OpenMP's spin-waiting makes every figure erratic;
``OMP_WAIT_POLICY=PASSIVE`` (set before Python starts) steadies them. Packed pairs
also time the bare loop without the block-diagonal mask (examples attend to each other: the
cost of the mask). Without ``--data``/``--model`` it writes the quickstart data (600 synthetic
consultations, 1,500 SFT rows) and bootstraps the default tiny model into ``--workdir`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAIRS = ("sft_padded", "sft_packed", "reward_model", "pretrain")
SIZES = ((64, 2), (64, 4), (128, 2), (128, 4), (256, 2), (256, 4))   # (hidden, layers)


def _prepare(workdir: Path) -> tuple[Path, Path]:
    data, boot = workdir / "data", workdir / "boot"
    medalign = [sys.executable, "-m", "medalign.cli"]
    if not (data / "sft" / "train.parquet").is_file():
        subprocess.run(medalign + ["data", "build", "quickstart", "outputs.sft.total=1500", "--synthetic", "600",
                                   "--out", str(data), "--quiet"], check=True)
    if not (boot / "model" / "config.json").is_file():
        subprocess.run(medalign + ["bootstrap", "--data", str(data), "--out", str(boot)], check=True,
                       stdout=subprocess.DEVNULL)
    return data, boot / "model"


def _step_timer(warmup: int, profile: str | None = None, rows: int = 15):
    """A TrainerCallback timing the steps after ``warmup`` (wall time and trained tokens).

    ``profile`` (a label): also print torch.profiler's costliest ``rows`` operators over the 3
    steps after the warm-up.
    """
    import torch
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == warmup:
                self.start, self.tokens0 = _clocks(), state.num_input_tokens_seen
            self.end, self.tokens1 = _clocks(), state.num_input_tokens_seen
            if profile and state.global_step == warmup:
                self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                self.profiler.__enter__()
            if profile and state.global_step == warmup + 3:
                self.profiler.__exit__(None, None, None)
                print(f"\nprofile of 3 steps: {profile}\n"
                      + self.profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows), flush=True)

        def tokens_per_s(self) -> tuple[float, float]:
            return _rates(self.tokens1 - self.tokens0, self.start, self.end)

    return StepTimer()


def _clocks() -> tuple[float, float]:
    """(wall time, CPU time of this process, all threads)."""
    return time.perf_counter(), time.process_time()


def _rates(tokens: int, start: tuple[float, float], end: tuple[float, float]) -> tuple[float, float]:
    """Tokens per wall second and per CPU second between two :func:`_clocks` readings."""
    return tokens / (end[0] - start[0]), tokens / (end[1] - start[1])


def _timed_tracker(out: Path, warmup: int, profile: str | None = None):
    """A Tracker (no TensorBoard) whose trainers carry a step timer; it keeps the last trainer."""
    from alignment.tracking import Tracker, TrackingSpec

    class TimedTracker(Tracker):
        def build_trainer(self, trainer_cls, subdir=None, **kwargs):
            self.trainer = super().build_trainer(trainer_cls, subdir, **kwargs)
            self.timer = _step_timer(warmup, profile)
            self.trainer.add_callback(self.timer)
            return self.trainer

    return TimedTracker(TrackingSpec(tensorboard=False), out)


def _optim(a, lr: float = 1e-3) -> dict:
    return {"learning_rate": lr, "max_steps": a.warmup + a.steps, "per_device_batch_size": a.batch,
            "logging_steps": 10, "warmup_ratio": 0.0}


def _batches(trainer, n: int, pad_id: int) -> list[dict]:
    """The ``n`` batches the trainer trained on: its data loader again (seeded sampler, same order).

    Checked: their non-padding tokens must add up to the tokens the trainer counted.
    """
    loader, batches, epoch = trainer.get_train_dataloader(), [], 0
    while len(batches) < n:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)   # as the trainer does: each epoch its own (seeded) order
        batches += [{k: v.cpu() for k, v in b.items()} for b in loader][: n - len(batches)]
        epoch += 1
    seen = trainer.state.num_input_tokens_seen
    if sum(_non_padding(b, pad_id) for b in batches) != seen:
        raise RuntimeError(f"the data loader's batches are not the ones the trainer saw ({seen} tokens)")
    return batches


def _non_padding(batch: dict, pad_id: int) -> int:
    """Trained tokens of a batch, counted as transformers' Trainer counts them."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int((batch["input_ids"] != pad_id).sum())


def bare_loop(model, batches: list[dict], warmup: int, pad_id: int, loss_fn) -> tuple[float, float]:
    """Tokens per wall and per CPU second of forward + ``loss_fn`` + backward + AdamW step over
    ``batches`` after ``warmup``."""
    import torch

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    tokens, start = 0, _clocks()
    for step, batch in enumerate(batches):
        if step == warmup:
            tokens, start = 0, _clocks()
        loss_fn(model, batch).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += _non_padding(batch, pad_id)
    return _rates(tokens, start, _clocks())


def lm_loss(model, batch: dict):
    return model(**batch, use_cache=False).loss


def lm_loss_no_mask(model, batch: dict):
    """Packed rows as plain causal rows: examples attend to the ones before them (the no-mask ceiling)."""
    return model(input_ids=batch["input_ids"], labels=batch["labels"], use_cache=False).loss


def bradley_terry_loss(model, batch: dict):
    import torch.nn.functional as F

    rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    chosen, rejected = rewards.squeeze(-1).chunk(2)
    return -F.logsigmoid(chosen - rejected - batch.get("margin", 0.0)).mean()


class Bench:
    """The inputs every pair shares: data, model, tokenizer, arguments."""

    def __init__(self, a, data: Path, model_dir: Path):
        import pyarrow.parquet as pq

        from alignment.models import load_tokenizer

        self.a, self.data, self.model_dir = a, data, model_dir
        self.tok = load_tokenizer(str(model_dir))
        self.conversations = [{"messages": r["messages"]}
                              for r in pq.read_table(data / "sft" / "train.parquet").to_pylist()]
        self.texts = [{"text": t} for t in pq.read_table(data / "pretrain" / "train.parquet").column("text").to_pylist()]
        self.cache: dict[str, list[dict]] = {}

    def lm_model(self):
        from alignment.models import load_causal_lm

        return load_causal_lm(str(self.model_dir), dtype="float32")

    def stage_lm(self, pair: str) -> tuple[float, float]:
        """One run of train_sft (sft or pretrain config); the stage's tokens per wall / CPU second."""
        from alignment.stages.pretrain import PretrainStageConfig
        from alignment.stages.sft import SFTStageConfig, train_sft
        from medalign.stage import StageContext

        a = self.a
        if pair == "pretrain":
            cfg, rows = PretrainStageConfig(optim=_optim(a), max_length=a.max_length), self.texts
        else:
            cfg = SFTStageConfig(optim=_optim(a), max_length=a.max_length, packing=pair == "sft_packed",
                                 eval_split=None, keep="last")
            rows = self.conversations
        out = self.a.workdir / "runs" / pair
        profile = f"the {pair} stage" if a.profile and pair not in self.cache else None
        tracker = _timed_tracker(out, a.warmup, profile)
        train_sft(str(self.model_dir), rows, [], cfg, out, StageContext(progress=False), tracker=tracker)
        self.cache.setdefault(pair, _batches(tracker.trainer, a.warmup + a.steps, self.tok.pad_token_id))
        return tracker.timer.tokens_per_s()

    def stage_rm(self) -> tuple[float, float]:
        from alignment.models import sequence_classifier_from_lm
        from alignment.stages.reward_model import RewardModelStageConfig, load_preference_data, train_pairwise
        from alignment.stages.inputs import Quarantine
        from medalign.stage import StageContext

        pairs = load_preference_data(self.data, "preferences", 0.0, "validation", Quarantine())["train_pairs"]
        cfg = RewardModelStageConfig(optim=_optim(self.a), max_length=self.a.max_length)
        out = self.a.workdir / "runs" / "reward_model"
        tracker = _timed_tracker(out, self.a.warmup)
        model = sequence_classifier_from_lm(str(self.model_dir), self.tok, dtype="float32")
        train_pairwise(model, self.tok, pairs, cfg, out, StageContext(progress=False), 0, tracker)
        self.cache.setdefault("reward_model", _batches(tracker.trainer, self.a.warmup + self.a.steps,
                                                       self.tok.pad_token_id))
        return tracker.timer.tokens_per_s()

    def bare(self, pair: str, loss_fn=lm_loss) -> tuple[float, float]:
        from alignment.models import sequence_classifier_from_lm

        if pair == "reward_model":
            model, loss_fn = sequence_classifier_from_lm(str(self.model_dir), self.tok, dtype="float32"), \
                bradley_terry_loss
        else:
            model = self.lm_model()
        return bare_loop(model, self.cache[pair], self.a.warmup, self.tok.pad_token_id, loss_fn)

    def run_pair(self, pair: str, rep: int) -> dict:
        """Stage and bare tokens/s (stage first on even repeats; the first run makes the batches)."""
        stage = (lambda: self.stage_rm()) if pair == "reward_model" else (lambda: self.stage_lm(pair))
        if rep % 2 == 0 or pair not in self.cache:
            row = {"stage": stage(), "bare": self.bare(pair)}
        else:
            row = {"bare": self.bare(pair)}
            row["stage"] = stage()
        if pair in ("sft_packed", "pretrain"):
            row["bare_no_mask"] = self.bare(pair, lm_loss_no_mask)
        return row


def trl_sfttrainer(bench: Bench, packing: bool) -> tuple[float, float]:
    """Tokens per wall / CPU second of trl's SFTTrainer on the same conversations (the sft stage until issue 11)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from alignment.distributed import DistributedSpec
    from alignment.stages.training_args import OptimSpec, common_trainer_kwargs
    from medalign.stage import StageContext

    a = bench.a
    out = a.workdir / "runs" / ("trl_packed" if packing else "trl_padded")
    args = SFTConfig(**common_trainer_kwargs(OptimSpec(**_optim(a)), out, StageContext(progress=False),
                                             DistributedSpec(), 0),
                     max_length=a.max_length, packing=packing, packing_strategy="bfd", assistant_only_loss=True,
                     save_strategy="no")
    timer = _step_timer(a.warmup, f"trl SFTTrainer {'packed' if packing else 'padded'}" if a.profile else None)
    model = bench.lm_model().train()
    SFTTrainer(model=model, args=args, processing_class=bench.tok, callbacks=[timer],
               train_dataset=Dataset.from_list(bench.conversations)).train()
    return timer.tokens_per_s()


def _spread(values: list[float], fmt: str = "8.0f") -> str:
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt.lstrip('0123456789')}}-{max(values):{fmt.lstrip('0123456789')}}]"


def _line(pair: str, label: str, r: dict) -> str:
    wall, cpu = r["stage"][0] / r["bare"][0], r["stage"][1] / r["bare"][1]
    extra = f"  bare without mask {r['bare_no_mask'][0]:6.0f}" if "bare_no_mask" in r else ""
    return (f"  {pair:13s} {label}: stage {r['stage'][0]:6.0f}  bare {r['bare'][0]:6.0f} tokens/s  "
            f"ratio {wall:.2f} (per CPU second {cpu:.2f}){extra}")


def run_pairs(bench: Bench, pairs: list[str], repeats: int) -> dict:
    """Every pair ``repeats`` times; per pair the runs and the stage/bare ratios (wall and CPU time)."""
    results = {}
    for pair in pairs:
        runs = []
        for rep in range(repeats):
            runs.append(bench.run_pair(pair, rep))
            print(_line(pair, f"repeat {rep}", runs[-1]), flush=True)
        results[pair] = {"runs": runs,
                         "ratio": [r["stage"][0] / r["bare"][0] for r in runs],
                         "ratio_cpu": [r["stage"][1] / r["bare"][1] for r in runs]}
    return results


def print_pairs(results: dict) -> None:
    print(f"\n{'pair':13s} {'stage tokens/s':>22s} {'bare tokens/s':>22s}   {'stage/bare':>18s}   "
          f"{'per CPU second':>18s}      (median [min-max])")
    for pair, r in results.items():
        stage, bare = [x["stage"][0] for x in r["runs"]], [x["bare"][0] for x in r["runs"]]
        print(f"{pair:13s} {_spread(stage):>22s} {_spread(bare):>22s}   {_spread(r['ratio'], '5.2f'):>18s}   "
              f"{_spread(r['ratio_cpu'], '5.2f'):>18s}")


def run_sizes(a, data: Path, model_dir: Path) -> list[dict]:
    """Stage (sft padded) and bare tokens/s for each model size in SIZES at 1 and 2 threads."""
    import torch

    from alignment.bootstrap import ModelSpec, build_tiny_model, save_checkpoint

    rows = []
    base = Bench(a, data, model_dir)
    for hidden, layers in SIZES:
        size_dir = a.workdir / "sizes" / f"h{hidden}_l{layers}"
        if not (size_dir / "config.json").is_file():
            spec = ModelSpec(hidden_size=hidden, num_hidden_layers=layers, intermediate_size=2 * hidden)
            save_checkpoint(build_tiny_model(spec, base.tok, seed=0), base.tok, size_dir)
        bench = Bench(a, data, size_dir)
        params = sum(p.numel() for p in bench.lm_model().parameters())
        for threads in (1, 2):
            torch.set_num_threads(threads)
            r = bench.run_pair("sft_padded", 0)
            rows.append({"hidden": hidden, "layers": layers, "parameters": params, "threads": threads, **r})
            print(_line(f"hidden {hidden:3d}", f"layers {layers} ({params / 1e6:.2f}M) threads {threads}", r),
                  flush=True)
    torch.set_num_threads(a.threads)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Figures on a shared machine are noisy: trust the ratios, run twice.")
    p.add_argument("--data", type=Path, help="data stage directory (sft/, preferences/, pretrain/ train splits)")
    p.add_argument("--model", type=Path, help="tiny model checkpoint")
    p.add_argument("--workdir", type=Path, default=Path("runs/benchmarks/sft_throughput"),
                   help="where the data, model, stage outputs and results.json go")
    p.add_argument("--steps", type=int, default=30, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=3, choices=range(1, 100), metavar="N",
                   help="untimed steps before them (>= 1)")
    p.add_argument("--batch", type=int, default=16, help="examples (or packed rows, or pairs) per step")
    p.add_argument("--max-length", type=int, default=512, help="truncation / packed row length")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads for both sides")
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs per pair")
    p.add_argument("--pairs", default=",".join(PAIRS), help=f"comma-separated subset of {','.join(PAIRS)}")
    p.add_argument("--sizes", action="store_true", help="also sft tokens/s at hidden 64/128/256 x 2/4 layers, 1/2 threads")
    p.add_argument("--with-trl", action="store_true", help="also trl's SFTTrainer, padded and packed")
    p.add_argument("--profile", action="store_true",
                   help="print torch.profiler's costliest operators of 3 timed steps of the first run of each sft or "
                   "pretrain stage and trl (those runs then pay the profiler too)")
    a = p.parse_args(argv)
    unknown = set(a.pairs.split(",")) - set(PAIRS) - {""}
    if unknown:
        p.error(f"--pairs: unknown {', '.join(sorted(unknown))}; choose from {', '.join(PAIRS)}")
    import torch

    from alignment.cpu_memory import keep_freed_memory

    torch.set_num_threads(a.threads)
    keep_freed_memory()   # as the stages do on a CPU; set first, so both sides run with it
    data, model_dir = (a.data, a.model) if a.data and a.model else _prepare(a.workdir)
    print(f"threads: torch {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}), "
          f"batch {a.batch}, max_length {a.max_length}, {a.warmup} warm-up + {a.steps} timed steps, "
          f"{os.cpu_count()} CPUs", flush=True)
    bench = Bench(a, data, model_dir)
    report: dict = {"threads": torch.get_num_threads(), "batch": a.batch, "max_length": a.max_length,
                    "steps": a.steps, "warmup": a.warmup}
    report["pairs"] = run_pairs(bench, [x for x in a.pairs.split(",") if x], a.repeats)
    if a.with_trl:
        report["trl_sfttrainer"] = {}
        for packing, pair in ((False, "sft_padded"), (True, "sft_packed")):
            tps = trl_sfttrainer(bench, packing)
            bare = bench.bare(pair) if pair in bench.cache else None
            report["trl_sfttrainer"][pair] = {"trl": tps, "bare": bare}
            print(f"  trl SFTTrainer {'packed' if packing else 'padded'}: {tps[0]:6.0f} tokens/s"
                  + (f"  bare {pair} {bare[0]:6.0f}: ratio {tps[0] / bare[0]:.2f} (per CPU second "
                     f"{tps[1] / bare[1]:.2f})" if bare else ""), flush=True)
    if a.sizes:
        report["sizes"] = run_sizes(a, data, model_dir)
    print_pairs(report["pairs"])
    (a.workdir / "results.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"\nresults: {a.workdir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
