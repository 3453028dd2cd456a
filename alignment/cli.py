"""``medalign bootstrap`` and ``medalign train``: run alignment stages outside a job.

    medalign bootstrap --data runs/demo/data-ab12 --out models/tiny model.hidden_size=128
    medalign train sft optim.epochs=1 optim.learning_rate=3e-3 \\
        --input data=runs/demo/data-ab12 --input model=models/tiny/model --out runs/manual/sft
    medalign train sft --nproc 2 --deepspeed zero2 ...      # torchrun, 2 CPU processes, ZeRO-2

Overrides (``key.sub=value``) go right after the stage name (or after ``--data``/``--out`` values
for bootstrap), before the options, as argparse reads positional words in one run.

Each command validates the stage config (a YAML via ``--config`` plus ``key.sub=value``
overrides), runs the stage into ``--out`` and writes ``manifest.json`` there, like the job runner.
Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

_TRAINABLE = ("bootstrap", "pretrain", "sft", "sample", "reward_model", "ppo", "rsft", "dpo", "online_rl", "eval")
_INPUTS_HELP = ("stage inputs as NAME=PATH, repeatable. bootstrap: data; pretrain/sft: data, model; "
                "sample: data, policy; reward_model: pairs, backbone; dpo: pairs, policy; "
                "ppo/online_rl: data, policy, reward_model; rsft: data, policy[, reward_model]; "
                "eval: data, policy, baseline[, reward_model, pairs]")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``medalign bootstrap`` and ``medalign train``."""
    p = subparsers.add_parser(
        "bootstrap", help="train a tokenizer on a corpus and build a tiny causal LM (HF checkpoint)",
        description="Train a byte-level BPE tokenizer (ChatML chat template with assistant masks) on the "
                    "text of a data stage's sft/train.parquet (+ pretrain/train.parquet) and build a tiny "
                    "Qwen2 or Llama model from config. Writes OUT/model, loadable with "
                    "AutoModelForCausalLM / AutoTokenizer.from_pretrained.")
    p.add_argument("--data", required=True, help="data stage directory (with sft/train.parquet)")
    p.add_argument("--out", required=True, help="output directory (the checkpoint goes to OUT/model)")
    p.add_argument("--config", help="YAML with bootstrap settings (tokenizer:, model:, seed:)")
    p.add_argument("--seed", type=int, default=0, help="weight-init seed when the config sets none")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help="e.g. tokenizer.vocab_size=8192 model.architecture=llama model.hidden_size=128")
    p.set_defaults(func=_bootstrap)

    p = subparsers.add_parser(
        "train", help="run one alignment stage (sft, reward_model, dpo, rsft, online_rl, ...) on given inputs",
        description="Run one alignment stage outside a job: validate its config, run it into --out, write "
                    "manifest.json. --nproc/--deepspeed launch it with torchrun (gloo on CPU).")
    p.add_argument("stage", choices=_TRAINABLE, help="stage to run")
    p.add_argument("--input", action="append", default=[], metavar="NAME=PATH", help=_INPUTS_HELP)
    p.add_argument("--out", required=True, help="stage output directory")
    p.add_argument("--config", help="YAML with the stage's config (see the stage module's Config)")
    p.add_argument("--nproc", type=int, help="processes for torchrun (sets distributed.nproc)")
    p.add_argument("--deepspeed", help="zero2, zero3 or a DeepSpeed JSON path (sets distributed.deepspeed)")
    p.add_argument("--seed", type=int, default=0, help="job-level seed (stages derive theirs from it)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides right after STAGE, e.g. optim.epochs=1")
    p.set_defaults(func=_train)


def _load_stage_config(module, path: str | None, overrides: list[str]):
    from medalign.config import apply_overrides, load_yaml, validate_mapping

    data = load_yaml(path) if path else {}
    apply_overrides(data, overrides)
    return validate_mapping(data, module.Config, source=path or "<command line>")


def _parse_inputs(items: list[str]) -> dict[str, str]:
    inputs = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"error: --input {item!r}: expected NAME=PATH")
        name, path = item.split("=", 1)
        inputs[name.strip()] = path.strip()
    return inputs


def _execute(stage: str, cfg, inputs: dict[str, str], out: Path, seed: int, device: str, progress: bool) -> int:
    import logging

    from medalign.artifacts import digest_path, stage_key, write_manifest
    from medalign.stage import StageContext

    from alignment.stages import STAGES

    out.mkdir(parents=True, exist_ok=True)
    digests = {n: digest_path(p) if Path(p).exists() else f"id:{p}" for n, p in inputs.items()}
    config = cfg.model_dump(mode="json")
    ctx = StageContext(job="manual", stage=stage, seed=seed, device=device, progress=progress,
                       logger=logging.getLogger(f"medalign.{stage}"))
    t0 = time.time()
    metrics = STAGES[stage]().run(cfg, inputs, out, ctx) or {}
    write_manifest(out, stage=stage, key=stage_key(stage, {"config": config, "seed": seed}, digests), config=config,
                   inputs={n: {"path": p, "digest": digests[n]} for n, p in inputs.items()},
                   metrics=json.loads(json.dumps(metrics, default=float)), timings={"wall_s": round(time.time() - t0, 3)},
                   exclude=frozenset({"logs", "checkpoints", "tensorboard"}))
    print(json.dumps(metrics, indent=2, default=float, ensure_ascii=False))
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    from alignment.stages import bootstrap

    cfg = _load_stage_config(bootstrap, args.config, args.overrides)
    return _execute("bootstrap", cfg, {"data": args.data}, Path(args.out), args.seed, "cpu", True)


def _train(args: argparse.Namespace) -> int:
    from alignment.stages import STAGES

    module = STAGES[args.stage]()
    overrides = list(args.overrides)
    if args.nproc is not None:
        overrides.append(f"distributed.nproc={args.nproc}")
    if args.deepspeed is not None:
        overrides.append(f"distributed.deepspeed={args.deepspeed}")
    if (args.nproc or args.deepspeed) and "distributed" not in module.Config.model_fields:
        print(f"error: stage {args.stage} does not run distributed (no distributed: settings)", file=sys.stderr)
        return 2
    cfg = _load_stage_config(module, args.config, overrides)
    return _execute(args.stage, cfg, _parse_inputs(args.input), Path(args.out), args.seed, args.device,
                    not args.no_progress)
