"""``medalign plan JOB``: per stage, the models' parameters, memory per GPU, whether it fits, and
tokens/s and wall time at a stated MFU. ``medalign run`` calls :func:`check_stages_fit` before it
starts a stage whose resources declare GPUs and their memory.

    plan = load_plan("jobs/huatuo_cluster.yaml")
    report = plan_job(plan, PlanSettings(gpus=8, gpu_mem_gb=80, gpu="A100-80GB"))
    print(format_plan(report))            # or json.dumps(report)

The arithmetic is in ``alignment/capacity/`` (no ray); which models and batches each stage kind
has is in :mod:`jobs.gpu_workloads`. A model's size comes from its checkpoint's config.json when it
is on this machine, else from ``--model-config``, else from ``alignment/capacity/sizes.yaml``;
a stage fed by another stage has the architecture of that stage's model (traced back to a checkpoint
or to the ``bootstrap`` stage's config). Nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from alignment.capacity.memory import GIB, Zero
from alignment.capacity.shapes import ModelShape, find_gpu, known_shape, shape_from_config
from alignment.capacity.throughput import DEFAULT_MFU
from medalign.config import ConfigError, line_of, load_mapping

from jobs.gpu_workloads import (BUILDERS, DATA_PARALLEL_KINDS, MODEL_ROLES, OUTPUT_MODEL_FROM, Hardware, StageView,
                                Workload, bootstrap_config, checkpointing_of, deepspeed_of, nproc_of,
                                stage_workload, zero_of)
from jobs.plan import InputRef, Plan, PlannedStage

DEFAULT_RESERVE_GB = 2.0   # per GPU: CUDA context, NCCL and DeepSpeed buffers, allocator fragmentation
ALTERNATIVES = (Zero(0), Zero(2), Zero(2, offload_optimizer=True), Zero(3), Zero(3, offload_optimizer=True),
                Zero(3, offload_optimizer=True, offload_params=True))


class ShapeUnknown(ValueError):
    """A stage's model size cannot be known on this machine (the message says what to pass)."""


class StagesDoNotFit(ConfigError):
    """``medalign run`` refuses to start: one line per stage that cannot fit its declared GPUs."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        ValueError.__init__(self, "\n".join(problems))


@dataclass
class PlanSettings:
    """Command-line choices of ``medalign plan`` (all optional: defaults come from the job)."""

    gpus: int | None = None              # data-parallel GPUs of each training stage
    gpu_mem_gb: float | None = None      # memory per GPU; else resources.gpu_memory_gb; else the GPU type's
    gpu: str | None = None               # GPU type in alignment/capacity/gpus.yaml
    peak_tflops: float | None = None     # overrides the GPU type's peak
    mfu: float = DEFAULT_MFU
    reserve_gb: float = DEFAULT_RESERVE_GB
    model_configs: dict[str, str] = field(default_factory=dict)   # model id (or "*") -> config.json
    examples: dict[str, int] = field(default_factory=dict)        # stage -> examples per epoch


def _read_config(path: str | Path, name: str) -> ModelShape:
    p = Path(path)
    try:
        return shape_from_config(json.loads(p.read_text(encoding="utf-8")), name=name)
    except (OSError, json.JSONDecodeError) as e:
        raise ShapeUnknown(f"model {name!r}: cannot read {p}: {e}") from None
    except ValueError as e:
        raise ShapeUnknown(str(e)) from None


def external_shape(ref: str, settings: PlanSettings) -> ModelShape:
    """The shape of a model a job names by path or hub id (no download)."""
    local = Path(ref) / "config.json"
    if local.is_file():
        return _read_config(local, ref)
    given = settings.model_configs.get(ref) or settings.model_configs.get("*")
    if given:
        return _read_config(given, ref)
    shape = known_shape(ref)
    if shape is None:
        raise ShapeUnknown(f"model {ref!r} has no config.json on this machine and is not in "
                           f"alignment/capacity/sizes.yaml; pass --model-config {ref}=path/to/config.json")
    return shape


def _traced_shape(plan: Plan, ref: InputRef, settings: PlanSettings, seen: tuple[str, ...] = ()) -> ModelShape:
    if ref.external:
        return external_shape(ref.external, settings)
    up = plan.stages[ref.stage]
    if up.kind == "bootstrap":
        return shape_from_config(bootstrap_config(up.config), name=f"{up.name} (bootstrap)")
    source = OUTPUT_MODEL_FROM.get(up.kind)
    if source is None or source not in up.inputs or up.name in seen:
        raise ShapeUnknown(f"cannot tell the architecture of the model of stage {up.name!r} (kind {up.kind})")
    return _traced_shape(plan, up.inputs[source], settings, (*seen, up.name))


def stage_shapes(plan: Plan, stage: PlannedStage, settings: PlanSettings) -> dict[str, ModelShape]:
    """Role -> shape of the models ``stage`` loads (optional inputs it does not have are left out)."""
    return {role: _traced_shape(plan, stage.inputs[inp], settings)
            for role, inp in MODEL_ROLES[stage.kind].items() if inp in stage.inputs}


def stage_world(stage: PlannedStage, settings: PlanSettings) -> int:
    """Data-parallel ranks (one GPU each): ``--gpus``, else what the stage declares; stages that
    generate in one process (sample, eval, rsft) use one GPU."""
    if stage.kind not in DATA_PARALLEL_KINDS:
        return 1
    if settings.gpus:
        return settings.gpus
    workers = stage.entry.resources.num_workers
    return workers if workers > 1 else nproc_of(stage.config)


def _hardware(stage: PlannedStage, settings: PlanSettings) -> tuple[Hardware | None, str | None, float | None]:
    """(timing hardware or None, GPU type name, the type's memory in GB)."""
    name = settings.gpu or stage.entry.resources.accelerator_type
    found = find_gpu(name) if name else None
    if settings.gpu and found is None:
        raise ShapeUnknown(f"--gpu {settings.gpu}: unknown GPU type (alignment/capacity/gpus.yaml); "
                           "give --peak-tflops instead")
    peak = settings.peak_tflops or (found[1].peak_tflops if found else None)
    hw = Hardware(peak, found[1].bandwidth_gb_s if found else None, settings.mfu) if peak else None
    return hw, found[0] if found else None, found[1].memory_gb if found else None


def _view(plan: Plan, stage: PlannedStage, settings: PlanSettings, hw: Hardware | None) -> StageView:
    return StageView(kind=stage.kind, cfg=stage.config, world=stage_world(stage, settings),
                     zero=zero_of(deepspeed_of(stage.config)), checkpointing=checkpointing_of(stage.config),
                     shapes=stage_shapes(plan, stage, settings), examples=settings.examples.get(stage.name), hw=hw)


def _gb(x: float) -> float:
    return round(x / GIB, 2)


def _peak(work: Workload, world: int):
    return max(work.phases, key=lambda p: p.total(world))


def _memory(work: Workload, world: int, reserve_gb: float) -> dict:
    phase = _peak(work, world)
    st = phase.states(world)
    return {"peak_phase": phase.name, "model_states_gb_per_gpu": _gb(st.total), "weights_gb_per_gpu": _gb(st.weights),
            "gradients_gb_per_gpu": _gb(st.gradients), "optimizer_gb_per_gpu": _gb(st.optimizer),
            "activations_gb_per_gpu": _gb(phase.activations), "logits_gb_per_gpu": _gb(phase.logits),
            "kv_cache_gb_per_gpu": _gb(phase.kv_cache), "working_gb_per_gpu": _gb(phase.working),
            "reserve_gb_per_gpu": reserve_gb, "total_gb_per_gpu": round(_gb(phase.total(world)) + reserve_gb, 2)}


def _timing(work: Workload, hw: Hardware | None) -> dict:
    out = {"step": work.step_unit, "steps": work.steps, "steps_unit": work.steps_unit,
           "tokens_per_step": round(work.tokens_per_step),
           "seconds_per_step": None, "tokens_per_s": None, "wall_time_s": None,
           "mfu": hw.mfu if hw else None, "peak_tflops": hw.peak_tflops if hw else None}
    if hw is not None and work.seconds_per_step:
        out.update(seconds_per_step=round(work.seconds_per_step, 3),
                   tokens_per_s=round(work.tokens_per_step / work.seconds_per_step))
        if work.steps is not None:
            out["wall_time_s"] = round(work.steps * work.seconds_per_step)
    return out


def plan_stage(plan: Plan, stage: PlannedStage, settings: PlanSettings) -> dict:
    """One stage's plan as a JSON-able dict (see ``medalign plan --help`` for the fields)."""
    row: dict = {"stage": stage.name, "kind": stage.kind}
    if stage.kind not in BUILDERS:
        return {**row, "planned": False, "model_states_gb_per_gpu": None, "total_gb_per_gpu": None,
                "notes": ["no model on a GPU"]}
    hw, gpu_name, type_mem = _hardware(stage, settings)
    v = _view(plan, stage, settings, hw)
    work = stage_workload(v)
    mem = settings.gpu_mem_gb or stage.entry.resources.gpu_memory_gb or type_mem
    memory = _memory(work, v.world, settings.reserve_gb)
    other = stage_workload(replace(v, checkpointing=not v.checkpointing, hw=None))
    kept = {v.checkpointing: work, not v.checkpointing: other}   # activations kept for backward, most of any phase
    models = {m.role: m for p in work.phases for m in p.models}
    row.update(planned=True, gpus=v.world, gpu_type=gpu_name, gpu_memory_gb=mem, zero=v.zero.label(),
               gradient_checkpointing=v.checkpointing,
               models=[{"role": m.role, "model": m.shape.name, "params": m.params, "trainable_params": m.trainable,
                        "precision": m.precision if m.scope is None else f"{m.precision} training",
                        "engine": m.zero.label()} for m in models.values()],
               phases=[{"name": p.name, "total_gb": _gb(p.total(v.world))} for p in work.phases], **memory)
    for flag, key in ((False, "activations_without_checkpointing_gb"), (True, "activations_with_checkpointing_gb")):
        row[key] = _gb(max(p.activations for p in kept[flag].phases))
    row["fits"] = None if mem is None else memory["total_gb_per_gpu"] <= mem
    if stage.kind in DATA_PARALLEL_KINDS:
        row["alternatives"] = [_alternative(stage_workload(replace(v, zero=z, hw=None)), z, v.world,
                                            settings.reserve_gb, mem) for z in ALTERNATIVES]
    row.update(_timing(work, hw), notes=work.notes)
    return row


def _alternative(work: Workload, zero: Zero, world: int, reserve_gb: float, mem: float | None) -> dict:
    m = _memory(work, world, reserve_gb)
    return {"zero": zero.label(), "model_states_gb_per_gpu": m["model_states_gb_per_gpu"],
            "total_gb_per_gpu": m["total_gb_per_gpu"], "fits": None if mem is None else m["total_gb_per_gpu"] <= mem}


def plan_job(plan: Plan, settings: PlanSettings, stages: list[str] | None = None) -> dict:
    """Plans of the job's stages (all, or ``stages``); a stage whose size is unknown gets ``error``."""
    rows = []
    for name, stage in plan.stages.items():
        if stages and name not in stages:
            continue
        try:
            rows.append(plan_stage(plan, stage, settings))
        except (ShapeUnknown, ValueError) as e:
            rows.append({"stage": name, "kind": stage.kind, "planned": False, "error": str(e),
                         "model_states_gb_per_gpu": None, "total_gb_per_gpu": None})
    return {"job": plan.job.name, "source": str(plan.source), "gb": "2^30 bytes", "mfu": settings.mfu,
            "reserve_gb_per_gpu": settings.reserve_gb, "stages": rows}


def check_stages_fit(plan: Plan, names: list[str], echo=print) -> None:
    """Refuse (raise :class:`StagesDoNotFit`) before any of ``names`` starts when one of them
    declares GPUs (``resources.num_gpus > 0``) and their memory (``resources.gpu_memory_gb``) and
    its plan needs more. CPU stages and stages without ``gpu_memory_gb`` are not checked; a stage
    whose model size is unknown here is reported and not refused."""
    problems = []
    data = load_mapping(plan.source) if plan.source.is_file() else {}
    for name in names:
        stage = plan.stages[name]
        r = stage.entry.resources
        if r.num_gpus <= 0 or r.gpu_memory_gb is None or stage.kind not in BUILDERS:
            continue
        try:
            row = plan_stage(plan, stage, PlanSettings())
        except (ShapeUnknown, ValueError) as e:
            echo(f"  plan: cannot check that stage {name} fits its GPUs: {e}")
            continue
        if row["fits"] is False:
            where = f"{plan.source}:{line_of(data, ('stages', name, 'resources')) or line_of(data, ('stages', name))}"
            problems.append(f"{where}: stage {name} does not fit its GPUs: {_figures(row)} > resources.gpu_memory_gb "
                            f"{r.gpu_memory_gb:g} ({row['gpus']} GPU(s), {row['zero']}); see medalign plan {plan.source}")
    if problems:
        raise StagesDoNotFit(problems)


def _figures(row: dict) -> str:
    parts = [("model states", "model_states_gb_per_gpu"), ("activations", "activations_gb_per_gpu"),
             ("logits", "logits_gb_per_gpu"), ("KV cache", "kv_cache_gb_per_gpu"), ("working", "working_gb_per_gpu"),
             ("reserve", "reserve_gb_per_gpu")]
    inner = ", ".join(f"{label} {row[key]:.1f}" for label, key in parts if row.get(key))
    return f"{row['total_gb_per_gpu']:.1f} GB per GPU ({inner})"
