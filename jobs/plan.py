"""Turn a job YAML into a plan: validated stage configs, resolved wiring, a dependency order.

Nothing here imports ray or runs a stage. :func:`load_plan` fails before any work starts on an
unknown key, an unknown stage kind, a bad stage config, a file a stage config names that is
missing or invalid (the stage's ``plan_problems``), an input that names no stage and no existing
path, or a cycle; every error names the job file, its line and the field path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medalign.config import ConfigError, StrictModel, line_of, load_mapping, validate_mapping

from medalign.registry import checked_stage_module, stage_input_prefixes, stage_inputs, stage_module
from medalign.stage import plan_problems
from jobs.schema import JobConfig, StageEntry


@dataclass
class InputRef:
    """Where one input of a stage comes from: an upstream stage of this job or an external path/id."""

    stage: str | None = None          # upstream stage name
    external: str | None = None       # a path or hub id given by the user
    is_model: bool = False            # True: the upstream stage's out/model directory


@dataclass
class PlannedStage:
    name: str
    kind: str
    entry: StageEntry
    config: StrictModel
    inputs: dict[str, InputRef] = field(default_factory=dict)

    @property
    def deps(self) -> list[str]:
        return sorted({ref.stage for ref in self.inputs.values() if ref.stage})


@dataclass
class Plan:
    job: JobConfig
    source: Path
    stages: dict[str, PlannedStage]    # in execution (topological) order

    @property
    def job_dir(self) -> Path:
        return Path(self.job.run_dir) / self.job.name


def load_plan(path: str | Path, overrides: list[str] | None = None) -> Plan:
    """Load, override and validate a job YAML; resolve every stage's config and inputs."""
    path = Path(path)
    data = load_mapping(path, overrides)
    job = validate_mapping(data, JobConfig, source=path)
    raw_stages = data.get("stages", {})
    enabled = {name: e for name, e in job.stages.items() if e.enabled}
    kinds = {name: (e.kind or name) for name, e in enabled.items()}
    stages: dict[str, PlannedStage] = {}
    problems: list[str] = []
    for name, entry in enabled.items():
        kind = kinds[name]
        line = line_of(data, ("stages", name))
        module = checked_stage_module(kind, f"{path}:{line}: stages.{name}.kind" if line else
                                      f"{path}: stages.{name}.kind")
        try:
            cfg = validate_mapping((raw_stages.get(name) or {}).get("config") or {}, module.Config,
                                   source=path, prefix=f"stages.{name}.config")
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        problems += _worker_problems(name, kind, module, entry, cfg,
                                     f"{path}:{line_of(data, ('stages', name, 'resources')) or line}")
        try:
            inputs = _resolve_inputs(name, kind, entry, kinds, path, data)
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        stages[name] = PlannedStage(name=name, kind=kind, entry=entry, config=cfg, inputs=inputs)
        line = line_of(data, ("stages", name, "config")) or line_of(data, ("stages", name))
        problems += [f"{path}:{line}: stages.{name}.config: {p}" for p in plan_problems(module, cfg)]
    problems += _missing_datasets(stages, path, data)
    if problems:
        raise ConfigError(problems)
    return Plan(job=job, source=path, stages=_topological(stages, path))


def _worker_problems(name: str, kind: str, module, entry: StageEntry, cfg, where: str) -> list[str]:
    """``resources.num_workers > 1`` on a stage that cannot use it, or with torchrun as well."""
    if entry.resources.num_workers <= 1:
        return []
    if not runs_data_parallel(module):
        return [f"{where}: stages.{name}.resources.num_workers: {kind} does not run data parallel (its config "
                "has no distributed: settings); set num_workers: 1"]
    nproc = getattr(getattr(cfg, "distributed", None), "nproc", 1)
    if nproc > 1:
        return [f"{where}: stages.{name}.resources.num_workers: Ray Train starts {entry.resources.num_workers} "
                f"workers and config.distributed.nproc asks torchrun for {nproc} more; use one of the two"]
    return []


def runs_data_parallel(module) -> bool:
    """Whether a stage may run on several Ray Train workers: its config has ``distributed``
    settings (a custom stage may say so with ``DATA_PARALLEL = True``)."""
    return bool(getattr(module, "DATA_PARALLEL", "distributed" in module.Config.model_fields))


def _missing_datasets(stages: dict[str, PlannedStage], source: Path, data: dict) -> list[str]:
    """Problems where a stage reads a dataset (``prompts``, ``sft``...) that its upstream data
    stage's recipe does not make (the input's declared ``reads``); upstream kinds without
    ``provides`` are not checked."""
    problems = []
    for name, st in stages.items():
        declared = stage_inputs(st.kind)
        for input_name, ref in st.inputs.items():
            needs = declared[input_name].reads if input_name in declared else ()   # prefixed: models
            upstream = stages.get(ref.stage) if ref.stage else None
            if not needs or upstream is None:
                continue
            provides = getattr(stage_module(upstream.kind), "provides", None)
            if provides is None:
                continue
            try:
                have = provides(upstream.config)
            except ConfigError as e:        # e.g. the recipe it names does not exist
                line = line_of(data, ("stages", upstream.name, "config")) or line_of(data, ("stages", upstream.name))
                for p in e.problems:            # once, however many stages read this data stage
                    message = f"{source}:{line}: stages.{upstream.name}.config: {p}"
                    problems += [message] if message not in problems else []
                continue
            if not have & set(needs):
                line = line_of(data, ("stages", name)) or line_of(data, ("stages", upstream.name))
                problems.append(f"{source}:{line}: stages.{name}.inputs.{input_name}: {st.kind} reads "
                                f"{' or '.join(needs)} from stage {upstream.name!r}, whose recipe makes only "
                                f"{sorted(have)}; add outputs.{needs[0]} to the recipe")
    return problems


def _resolve_inputs(name: str, kind: str, entry: StageEntry, kinds: dict[str, str],
                    source: Path, data: dict) -> dict[str, InputRef]:
    """Wire each declared input: the stage or path the job entry names, else the first stage of
    the job whose kind the declaration lists; an optional input with neither is left out. Inputs
    named with one of the stage's ``INPUT_PREFIXES`` (``extra_<name>``) are taken as given."""
    wanted = stage_inputs(kind)
    prefixes = stage_input_prefixes(kind)
    prefixed = {n: spec for n in entry.inputs if n not in wanted
                for p, spec in prefixes.items() if n.startswith(p) and len(n) > len(p)}
    unknown = set(entry.inputs) - set(wanted) - set(prefixed)
    if unknown:
        line = line_of(data, ("stages", name, "inputs"))
        takes = sorted(wanted) + [f"{p}<name>" for p in prefixes]
        raise ConfigError([f"{source}:{line}: stages.{name}.inputs: unknown input(s) "
                           f"{sorted(unknown)}; {kind} takes {takes}"])
    refs: dict[str, InputRef] = {}
    for input_name, spec in {**wanted, **prefixed}.items():
        given = entry.inputs.get(input_name)
        if given is not None:
            refs[input_name] = _given_input(name, input_name, given, spec, kinds, source, data)
            continue
        upstream = next((s for c in spec.kinds for s, k in kinds.items() if k == c and s != name), None)
        if upstream is None and spec.optional:
            continue
        if upstream is None:
            line = line_of(data, ("stages", name))
            raise ConfigError([f"{source}:{line}: stages.{name}: input {input_name!r} has no source: "
                               f"add a stage of kind {' or '.join(spec.kinds)} or set "
                               f"stages.{name}.inputs.{input_name}"])
        refs[input_name] = InputRef(stage=upstream, is_model=spec.model)
    return refs


def _given_input(name: str, input_name: str, given: str, spec, kinds: dict[str, str],
                 source: Path, data: dict) -> InputRef:
    """The input a job entry names: a stage of the job, or a path / hub id (a model may be a hub
    id; anything else must exist, checked now, before work starts)."""
    if given in kinds:
        return InputRef(stage=given, is_model=spec.model)
    if spec.model or Path(given).exists():
        return InputRef(external=given, is_model=spec.model)
    line = line_of(data, ("stages", name, "inputs", input_name))
    raise ConfigError([f"{source}:{line}: stages.{name}.inputs.{input_name}: {given!r} is "
                       f"neither a stage of this job nor an existing path"])


def _topological(stages: dict[str, PlannedStage], source: Path) -> dict[str, PlannedStage]:
    """Order stages so every stage follows its inputs; ties keep the YAML order."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ConfigError([f"{source}: stages: cycle {' -> '.join(chain + [name])}"])
        state[name] = 1
        for dep in stages[name].deps:
            if dep not in stages:
                raise ConfigError([f"{source}: stages.{name}: needs stage {dep!r}, which is disabled"])
            visit(dep, chain + [name])
        state[name] = 2
        order.append(name)

    for name in stages:
        visit(name, [])
    return {name: stages[name] for name in order}
