"""``medalign bootstrap`` and ``medalign train``: run alignment stages outside a job
(``medalign eval``: alignment/evaluation/cli.py).

    medalign bootstrap --data runs/demo/data-ab12 --out models/tiny model.hidden_size=128
    medalign train sft optim.epochs=1 optim.learning_rate=3e-3 \\
        --input data=runs/demo/data-ab12 --input model=models/tiny/model --out runs/manual/sft
    medalign train sft --nproc 2 --deepspeed zero2 ...      # torchrun, 2 CPU processes, ZeRO-2

Overrides (``key.sub=value``) go right after the stage name (or after ``--data``/``--out`` values
for bootstrap), before the options, as argparse reads positional words in one run.

Each command validates the stage config (a YAML via ``--config`` plus ``key.sub=value``
overrides) and the ``--input`` names against the stage's declared ``INPUTS``, then runs the stage
into ``--out`` through :func:`medalign.executor.execute_stage`, the executor of ``medalign run``:
the same config and inputs give the same key and the same output digest. The stage's output
streams to the terminal and to ``--out/logs/stage.log``. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medalign.errors import UserError
from medalign.registry import kinds_in, stage_module
from medalign.stage import declared_inputs, inputs_summary

TRAINABLE = kinds_in("alignment")      # the alignment stages, as the registry lists them


def _inputs_help() -> str:
    """``--input`` help, from each stage's declared inputs (optional ones in brackets)."""
    per_stage = "; ".join(f"{kind}: {inputs_summary(stage_module(kind))}" for kind in TRAINABLE)
    return f"stage inputs as NAME=PATH, repeatable. {per_stage}"


def _describe_inputs_when_asked(parser: argparse.ArgumentParser, action: argparse.Action) -> None:
    """List every stage's inputs in ``--help`` only: it imports the stage modules, which every
    other ``medalign`` command need not pay for."""
    format_help = parser.format_help

    def format_help_with_inputs() -> str:
        action.help = _inputs_help()
        return format_help()

    parser.format_help = format_help_with_inputs


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``medalign bootstrap``, ``medalign train`` and ``medalign eval``."""
    from alignment.evaluation.cli import register as register_eval

    register_eval(subparsers)
    p = subparsers.add_parser(
        "bootstrap", help="train a tokenizer on a corpus and build a tiny causal LM (HF checkpoint)",
        description="Train a byte-level BPE tokenizer (ChatML chat template with assistant masks) on the "
                    "text of a data stage's sft/train.parquet (+ pretrain/train.parquet) and build a tiny "
                    "Qwen2 or Llama model from config. Writes OUT/model, loadable with "
                    "AutoModelForCausalLM / AutoTokenizer.from_pretrained.")
    p.add_argument("--data", required=True, help="data stage directory (with sft/train.parquet)")
    p.add_argument("--out", required=True, help="output directory (the checkpoint goes to OUT/model)")
    p.add_argument("--config", help="YAML with bootstrap settings (tokenizer:, model:, seed:)")
    p.add_argument("--seed", type=int, default=0, help="job-level seed (the weights' seed when the config sets none)")
    p.add_argument("overrides", nargs="*", default=[], metavar="key.sub=value",
                   help="e.g. tokenizer.vocab_size=8192 model.architecture=llama model.hidden_size=128")
    p.set_defaults(func=_bootstrap)

    p = subparsers.add_parser(
        "train", help="run one alignment stage (sft, reward_model, dpo, rsft, online_rl, ...) on given inputs",
        description="Run one alignment stage outside a job: validate its config, run it into --out, write "
                    "manifest.json (the same executor and stage key as `medalign run`). --nproc/--deepspeed "
                    "launch it with torchrun (gloo on CPU).")
    p.add_argument("stage", choices=TRAINABLE, help="stage to run")
    inputs = p.add_argument("--input", action="append", default=[], metavar="NAME=PATH",
                            help="stage inputs as NAME=PATH, repeatable")
    _describe_inputs_when_asked(p, inputs)
    p.add_argument("--out", required=True, help="stage output directory")
    p.add_argument("--config", help="YAML with the stage's config (see the stage module's Config)")
    p.add_argument("--nproc", type=int, help="processes for torchrun (sets distributed.nproc)")
    p.add_argument("--deepspeed", help="zero2, zero3 or a DeepSpeed JSON path (sets distributed.deepspeed)")
    p.add_argument("--seed", type=int, default=0, help="job-level seed (stages derive theirs from it)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", default=[], metavar="key.sub=value", help="config overrides right after STAGE, e.g. optim.epochs=1")
    p.set_defaults(func=_train)


def _load_stage_config(module, path: str | None, overrides: list[str]):
    from medalign.config import apply_overrides, load_yaml, validate_mapping

    data = load_yaml(path) if path else {}
    apply_overrides(data, overrides)
    return validate_mapping(data, module.Config, source=path or "<command line>")


def parse_inputs(kind: str, items: list[str]) -> dict[str, str]:
    """``NAME=PATH`` items checked against the stage's declared inputs: every required one
    given, no unknown name, every path that is not a model's hub id present."""
    declared = declared_inputs(stage_module(kind))
    inputs = {}
    for item in items:
        name, eq, path = item.partition("=")
        if not eq or not name.strip() or not path.strip():
            raise UserError(f"--input {item!r}: expected NAME=PATH, e.g. --input data=runs/demo/data-1a2b")
        inputs[name.strip()] = path.strip()
    unknown = sorted(set(inputs) - set(declared))
    if unknown:
        raise UserError(f"--input {unknown[0]}: stage {kind} has no input {unknown[0]!r}; it takes "
                        f"{inputs_summary(stage_module(kind))}")
    missing = [n for n, i in declared.items() if not i.optional and n not in inputs]
    if missing:
        raise UserError(f"stage {kind} needs --input {missing[0]}=PATH ({declared[missing[0]].doc})")
    for name, path in inputs.items():
        if not declared[name].model and not Path(path).exists():
            raise UserError(f"--input {name}={path}: no such file or directory")
    return inputs


def _execute(kind: str, cfg, inputs: dict[str, str], out: Path, seed: int, device: str, progress: bool) -> int:
    import logging

    from medalign.errors import StageFailed
    from medalign.executor import execute_stage, prepare_run
    from medalign.stage import StageContext
    from medalign.stagelog import LOG_NAME

    run = prepare_run(kind, cfg, inputs, seed=seed, out_dir=out)
    ctx = StageContext(job="manual", stage=kind, seed=seed, device=device, progress=progress,
                       logger=logging.getLogger(f"medalign.{kind}"))
    try:
        manifest = execute_stage(run, ctx, capture=False)
    except StageFailed as e:
        raise StageFailed(f"stage {kind} failed: {e} (log: {out / LOG_NAME})") from None
    print(json.dumps(manifest["metrics"], indent=2, default=float, ensure_ascii=False))
    print(f"key {run.key}; manifest: {out / 'manifest.json'}")
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    module = stage_module("bootstrap")
    if not Path(args.data).is_dir():
        raise UserError(f"--data {args.data}: no such directory (give a data stage directory, with sft/)")
    cfg = _load_stage_config(module, args.config, args.overrides)
    return _execute("bootstrap", cfg, parse_inputs("bootstrap", [f"data={args.data}"]), Path(args.out),
                    args.seed, "cpu", True)


def _train(args: argparse.Namespace) -> int:
    module = stage_module(args.stage)
    overrides = list(args.overrides)
    if args.nproc is not None:
        overrides.append(f"distributed.nproc={args.nproc}")
    if args.deepspeed is not None:
        overrides.append(f"distributed.deepspeed={args.deepspeed}")
    if (args.nproc or args.deepspeed) and "distributed" not in module.Config.model_fields:
        raise UserError(f"stage {args.stage} does not run distributed (its config has no distributed: settings)")
    cfg = _load_stage_config(module, args.config, overrides)
    return _execute(args.stage, cfg, parse_inputs(args.stage, args.input), Path(args.out), args.seed,
                    args.device, not args.no_progress)
