"""Stage ``sample``: k responses per prompt from the policy, for the judge to compare.

Inputs: ``data`` (reads ``prompts/<split>.parquet``) and ``policy`` (checkpoint). Output
``out/samples.parquet`` with the CONTRACTS columns: ``prompt_id``, ``messages``, ``reference``,
``language``, ``responses`` (k strings), ``response_ids`` (``"<prompt_id>#<i>"``), ``policy``.

Generation runs where ``generation`` says (:mod:`alignment.generation_backends`): in this process
(the default; rank 0 when a data-parallel group runs the stage, the other ranks return at once),
on an OpenAI-compatible inference server, or on a Ray Data pool of model replicas. The metrics
(and so the manifest) record how (``generation``: backend, endpoint, model, what seeds mean).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from alignment.distributed import is_main_process
from alignment.generation import SamplingSpec
from alignment.generation_backends import GenerationRequest, GenerationSpec, generate
from alignment.models import DType
from alignment.stages.inputs import Quarantine, load_prompt_split
from medalign.config import StrictModel
from medalign.stage import Input, StageContext

NAME = "sample"
INPUTS = {"data": Input(("data",), "data stage directory (prompts/)", reads=("prompts",)),
          "policy": Input(("sft",), "checkpoint to sample from", model=True)}


class SampleStageConfig(StrictModel):
    """Which prompts, how many samples each, and how to decode."""

    split: str = "train"                                  # prompts/<split>.parquet
    k: int = Field(4, ge=1)                               # responses per prompt (the judge pairs them)
    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(temperature=1.0, top_p=0.95))  # decoding
    generation: GenerationSpec = Field(default_factory=GenerationSpec)  # where: in_process, endpoint, ray_actors
    max_prompts: int | None = Field(None, ge=1)           # first N prompts only (None: all)
    policy_label: str | None = None                       # value of the `policy` column (None: input path)
    dtype: DType = "auto"                                 # model dtype (auto: bf16 on GPU, fp32 on CPU)
    seed: int | None = None                               # None: the job seed
    max_empty_fraction: float = Field(0.0, ge=0, le=1)    # more empty responses than this share: the stage failed


Config = SampleStageConfig


def accept(cfg: SampleStageConfig, metrics: dict) -> list[str]:
    """Empty responses would reach the judge as answers: the stage fails instead."""
    samples, empty = metrics.get("samples") or 0, metrics.get("empty_responses") or 0
    if samples == 0:
        return ["no responses were sampled"]
    if empty / samples > cfg.max_empty_fraction:
        return [f"{empty} of {samples} sampled responses are empty, more than max_empty_fraction "
                f"{cfg.max_empty_fraction:g}"]
    return []


def generate_from_checkpoint(ref: str, role: str, prompts: list[dict], spec: SamplingSpec, k: int, seed: int,
                             dtype: DType, ctx: StageContext, generation: GenerationSpec | None = None,
                             work_dir: Path | None = None, info: dict | None = None) -> list[list]:
    """``k`` :class:`Generation` per prompt row (in order) from the causal LM at ``ref``, on the
    backend ``generation`` names (in-process when None; see :mod:`alignment.generation_backends`).
    ``work_dir`` (the stage directory) holds the endpoint's cache and a launched server's log;
    ``info``, when given, receives the backend's record of how the responses were made."""
    request = GenerationRequest(ref=ref, role=role, prompts=[p["messages"] for p in prompts], sampling=spec,
                                k=k, seed=seed, dtype=dtype, device=ctx.device, progress=ctx.progress,
                                work_dir=Path(work_dir) if work_dir else None, logger=ctx.logger)
    result = generate(request, generation)
    if info is not None:
        info.update(result.info)
    return result.generations


def policy_label(ref: str) -> str:
    """The default ``policy`` column: a hub id as given, a checkpoint path by its last two parts
    (``sft-1a2b3c/model``), so the output holds no absolute path and keeps its digest anywhere."""
    path = Path(ref)
    return "/".join(path.parts[-2:]) if path.exists() else ref


def sample_rows(prompts: list[dict], outs: list[list], label: str) -> list[dict]:
    """samples.parquet rows for ``prompts`` (rows of ``prompts/``) and their generations."""
    rows = []
    for prompt, gens in zip(prompts, outs):
        rows.append({"prompt_id": prompt["prompt_id"], "messages": prompt["messages"],
                     "reference": prompt.get("reference"), "language": prompt.get("language"),
                     "responses": [g.text for g in gens],
                     "response_ids": [f"{prompt['prompt_id']}#{i}" for i in range(len(gens))],
                     "response_tokens": [g.n_tokens for g in gens],
                     "policy": label})
    return rows


def run(cfg: SampleStageConfig, inputs: dict[str, str], out: Path, ctx: StageContext) -> dict:
    import pandas as pd

    if not is_main_process():
        return {}
    out = Path(out)
    quarantine = Quarantine()
    prompts = load_prompt_split(inputs["data"], cfg.split, quarantine, cfg.max_prompts, NAME)
    seed = ctx.seed if cfg.seed is None else cfg.seed
    info: dict = {}
    outs = generate_from_checkpoint(inputs["policy"], "policy", prompts, cfg.sampling, cfg.k, seed, cfg.dtype, ctx,
                                    cfg.generation, out, info)
    rows = sample_rows(prompts, outs, cfg.policy_label or policy_label(inputs["policy"]))
    pd.DataFrame(rows).to_parquet(out / "samples.parquet", index=False)
    quarantine.write(out)
    lengths = [n for r in rows for n in r["response_tokens"]]
    empty = sum(1 for r in rows for t in r["responses"] if not t.strip())
    return {"prompts": len(rows), "samples": len(lengths), "mean_response_tokens": sum(lengths) / len(lengths),
            "empty_responses": empty, "quarantined": len(quarantine), "generation": info}
