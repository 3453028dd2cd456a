"""``medalign plan``: the command and its text report (the numbers come from :mod:`jobs.gpu_plan`)."""

from __future__ import annotations

import argparse
import json

from alignment.capacity.throughput import DEFAULT_MFU
from medalign.config import ConfigError

from jobs.gpu_plan import DEFAULT_RESERVE_GB, PlanSettings

DESCRIPTION = """\
Per stage of a job: the models' parameters, memory per GPU (weights, gradients and optimizer
states under the stage's ZeRO setting, activations at its sequence length and micro-batch, logits,
KV cache while generating), whether that fits, and tokens/s and wall time at a stated MFU. Nothing
runs and nothing is downloaded: a model's size comes from its local config.json, --model-config, or
alignment/capacity/sizes.yaml (Llama-2 7B/13B/70B, Llama-3 8B, Qwen2 7B/72B, Qwen2.5 14B,
BLOOMZ-7b1). GB means 2^30 bytes (as nvidia-smi counts an 80 GB A100).
Memory per GPU is the peak phase of the stage (PPO: rollout, scoring or update) plus a reserve for
the CUDA context, NCCL and fragmentation. Other ZeRO settings are listed for training stages.
Exit status: 0 every sized stage fits, 1 one does not, 2 a stage could not be sized.
Example: medalign plan jobs/huatuo_cluster.yaml --gpus 8 --gpu-mem 80 --gpu A100-80GB
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="will each stage of a job fit its GPUs, and how long will it take",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("job", help="job YAML, e.g. jobs/huatuo_cluster.yaml")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides, as for medalign run")
    p.add_argument("--gpus", type=int, metavar="N", help="data-parallel GPUs of every training stage "
                   "(default: each stage's resources.num_workers or distributed.nproc); sample, eval and rsft "
                   "generate in one process on one GPU")
    p.add_argument("--gpu-mem", type=float, metavar="GB", help="memory of each GPU (default: the stage's "
                   "resources.gpu_memory_gb, else the --gpu type's)")
    p.add_argument("--gpu", metavar="TYPE", help="GPU type for peak FLOP/s and memory bandwidth, e.g. A100-80GB, "
                   "H100-SXM, H800, L40S (alignment/capacity/gpus.yaml; default: resources.accelerator_type)")
    p.add_argument("--peak-tflops", type=float, metavar="X", help="peak dense bf16 TFLOP/s per GPU (overrides --gpu)")
    p.add_argument("--mfu", type=float, default=DEFAULT_MFU, help=f"model FLOPs utilisation for tokens/s and wall "
                   f"time (default {DEFAULT_MFU}: typical of ZeRO data-parallel 7B-70B training)")
    p.add_argument("--reserve-gb", type=float, default=DEFAULT_RESERVE_GB, metavar="GB",
                   help=f"per-GPU memory kept for CUDA context, NCCL and fragmentation (default {DEFAULT_RESERVE_GB})")
    p.add_argument("--model-config", action="append", default=[], metavar="[ID=]PATH",
                   help="config.json of a hub model that is not on this machine (ID=PATH for one id, PATH for all)")
    p.add_argument("--examples", action="append", default=[], metavar="STAGE=N",
                   help="training examples (online_rl, sample, eval: prompts) per epoch of a stage, for its wall time")
    p.add_argument("--stage", action="append", metavar="NAME", help="plan only these stages (repeatable)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=_plan)


def _pairs(values: list[str], option: str, convert) -> dict:
    out = {}
    for text in values:
        key, sep, value = text.partition("=")
        if option == "--model-config" and not sep:
            key, value = "*", text
        try:
            out[key] = convert(value)
        except ValueError:
            raise ConfigError([f"{option} {text}: expected {'ID=PATH' if option == '--model-config' else 'STAGE=N'}"]) \
                from None
    return out


def settings_from_args(args: argparse.Namespace) -> PlanSettings:
    for name, value in (("--gpus", args.gpus), ("--gpu-mem", args.gpu_mem), ("--peak-tflops", args.peak_tflops)):
        if value is not None and value <= 0:
            raise ConfigError([f"{name} {value}: must be > 0"])
    if args.reserve_gb < 0:
        raise ConfigError([f"--reserve-gb {args.reserve_gb}: must be >= 0"])
    if not 0 < args.mfu <= 1:
        raise ConfigError([f"--mfu {args.mfu}: must be in (0, 1]"])
    return PlanSettings(gpus=args.gpus, gpu_mem_gb=args.gpu_mem, gpu=args.gpu, peak_tflops=args.peak_tflops,
                        mfu=args.mfu, reserve_gb=args.reserve_gb,
                        model_configs=_pairs(args.model_config, "--model-config", str),
                        examples=_pairs(args.examples, "--examples", int))


def _plan(args: argparse.Namespace) -> int:
    from jobs.gpu_plan import plan_job
    from jobs.plan import load_plan

    plan = load_plan(args.job, args.overrides)
    for name in args.stage or []:
        if name not in plan.stages:
            raise ConfigError([f"--stage {name}: no such stage in {args.job} (stages: {', '.join(plan.stages)})"])
    report = plan_job(plan, settings_from_args(args), args.stage)
    print(json.dumps(report, indent=2) if args.json else format_plan(report))
    rows = report["stages"]
    if any("error" in r for r in rows):
        return 2
    return 1 if any(r.get("fits") is False for r in rows) else 0


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _memory_line(r: dict) -> str:
    parts = [f"model states {r['model_states_gb_per_gpu']:.1f} (weights {r['weights_gb_per_gpu']:.1f}, "
             f"gradients {r['gradients_gb_per_gpu']:.1f}, optimizer {r['optimizer_gb_per_gpu']:.1f})"]
    for label, key in (("activations", "activations_gb_per_gpu"), ("logits", "logits_gb_per_gpu"),
                       ("KV cache", "kv_cache_gb_per_gpu"), ("working", "working_gb_per_gpu"),
                       ("reserve", "reserve_gb_per_gpu")):
        if r.get(key):
            parts.append(f"{label} {r[key]:.1f}")
    return " + ".join(parts) + f" = {r['total_gb_per_gpu']:.1f} GB  (peak phase: {r['peak_phase']})"


def _time_line(r: dict) -> str:
    if r["seconds_per_step"] is None:
        return f"per {r['step']}: give --gpu or --peak-tflops for timing"
    text = (f"{_duration(r['seconds_per_step'])} per {r['step']}, {r['tokens_per_s']:,} tokens/s "
            f"at MFU {r['mfu']} of {r['peak_tflops']:g} TFLOP/s")
    if r["wall_time_s"] is not None:
        return text + f"; {r['steps']:,} {r['steps_unit']}: {_duration(r['wall_time_s'])}"
    return text + f"; wall time: give --examples {r['stage']}=N"


def _stage_lines(r: dict) -> list[str]:
    if "error" in r:
        return [f"{r['stage']:<13} cannot be sized: {r['error']}"]
    if not r["planned"]:
        return [f"{r['stage']:<13} ({r['notes'][0]})"]
    verdict = {True: "fits", False: "DOES NOT FIT", None: "fit unknown (give --gpu-mem)"}[r["fits"]]
    mem = f" / {r['gpu_memory_gb']:g}" if r["gpu_memory_gb"] else ""
    lines = [f"{r['stage']:<13} {r['gpus']} GPU(s), {r['zero']}: {r['total_gb_per_gpu']:.1f}{mem} GB per GPU, {verdict}"]
    for m in r["models"]:
        lines.append(f"    {m['role']:<13} {m['model']}: {_count(m['params'])} params, "
                     f"{_count(m['trainable_params'])} trainable, {m['precision']}, {m['engine']}")
    lines.append("    memory       " + _memory_line(r))
    if r["activations_without_checkpointing_gb"]:
        lines.append(f"    recompute    activations {r['activations_without_checkpointing_gb']:.1f} GB without, "
                     f"{r['activations_with_checkpointing_gb']:.1f} GB with full gradient checkpointing "
                     f"({'on' if r['gradient_checkpointing'] else 'off: the trainers of this repo do not turn it on'})")
    if r.get("alternatives"):
        alts = ", ".join(f"{a['zero']} {a['total_gb_per_gpu']:.1f}{'' if a['fits'] in (True, None) else ' (no)'}"
                         for a in r["alternatives"])
        lines.append(f"    other ZeRO   {alts}")
    lines.append("    time         " + _time_line(r))
    lines.extend(f"    note         {n}" for n in r.get("notes", []))
    return lines


def format_plan(report: dict) -> str:
    """The plan as text: one block per stage."""
    head = (f"plan of job {report['job']} ({report['source']}); GB = 2^30 bytes per GPU, "
            f"reserve {report['reserve_gb_per_gpu']:g} GB per GPU included")
    lines = [head]
    for r in report["stages"]:
        lines.extend(_stage_lines(r))
    return "\n".join(lines)
