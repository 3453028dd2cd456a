"""``generation.backend: ray_actors``: a Ray Data actor pool with one model replica per actor.

The prompts are cut into the same generate calls as in one process
(:func:`alignment.generation.plan_batches`: sorted by length, ``sampling.batch_size`` a call,
call ``b`` seeded with ``seed + b``). Each call is one row of a Ray dataset; ``map_batches``
sends the rows to an :class:`ray.data.ActorPoolStrategy` pool of ``replicas`` actors, each of
which loads the checkpoint once and runs :func:`alignment.generation.generate_batch`. The pool
therefore samples exactly what ``backend: in_process`` samples on the same device and dtype (the
same calls with the same seeds), at any temperature; only the order in which calls run differs.

Each actor asks for ``replica_cpus`` CPUs and ``replica_gpus`` GPUs (on a GPU cluster:
``replica_gpus: 1`` and ``dtype: auto`` gives bf16 on the GPU). The stage's own task keeps its
resources while the pool runs, so a job gives the stage ``num_cpus`` for itself and the cluster
must have room for the replicas besides.

Registered by :func:`register` in the Ray task that runs a stage (``jobs/ray_tasks.py``):
``alignment`` never imports ray.
"""

from __future__ import annotations

import json
import logging

from alignment.generation import Generation, SamplingSpec, plan_batches
from alignment.generation_backends import GenerationRequest, GenerationResult, GenerationSpec, register_backend


class _Replica:
    """One model replica: loads the checkpoint once, answers generate calls (rows)."""

    def __init__(self, ref: str, role: str, dtype: str, device: str):
        from alignment.models import load_causal_lm, load_tokenizer

        self.tokenizer = load_tokenizer(ref, role)
        self.model = load_causal_lm(ref, role, device=device, dtype=dtype)

    def __call__(self, rows: dict) -> dict:
        from alignment.generation import generate_batch

        spec = SamplingSpec.model_validate_json(rows["sampling"][0])
        outs = []
        for call, prompts, k, seed in zip(rows["call"], rows["prompts"], rows["k"], rows["seed"]):
            gens = generate_batch(self.model, self.tokenizer, json.loads(prompts), spec, int(k), int(seed))
            outs.append(json.dumps([[[g.text, g.n_tokens, g.finished] for g in row] for row in gens]))
        return {"call": list(rows["call"]), "generations": outs}


class RayActorBackend:
    def __init__(self, spec: GenerationSpec):
        self.spec = spec

    def generate(self, request: GenerationRequest) -> GenerationResult:
        import ray

        calls = plan_batches(request.prompts, request.sampling.batch_size)
        rows = [{"call": b, "prompts": json.dumps([request.prompts[i] for i in idx], ensure_ascii=False),
                 "k": request.k, "seed": request.seed + b, "sampling": request.sampling.model_dump_json()}
                for b, idx in enumerate(calls)]
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = request.progress
        if not request.progress:              # Ray Data logs each execution at INFO
            logging.getLogger("ray.data").setLevel(logging.WARNING)
        replicas = min(self.spec.replicas, len(rows)) or 1
        ds = ray.data.from_items(rows, override_num_blocks=len(rows) or 1).map_batches(
            _Replica, batch_size=1, compute=ray.data.ActorPoolStrategy(size=replicas),
            fn_constructor_kwargs={"ref": request.ref, "role": request.role, "dtype": request.dtype,
                                   "device": "cuda" if self.spec.replica_gpus > 0 else "cpu"},
            num_cpus=self.spec.replica_cpus, num_gpus=self.spec.replica_gpus)
        results: list[list[Generation]] = [[] for _ in request.prompts]
        for row in ds.take_all():
            for i, gens in zip(calls[int(row["call"])], json.loads(row["generations"])):
                results[i] = [Generation(text=t, n_tokens=int(n), finished=bool(f)) for t, n, f in gens]
        return GenerationResult(results, {
            "backend": "ray_actors", "replicas": replicas, "calls": len(calls),
            "replica_cpus": self.spec.replica_cpus, "replica_gpus": self.spec.replica_gpus,
            "seeds": "torch RNG seeded with seed + call index per generate call, as in_process"})


def register() -> None:
    """Make ``generation.backend: ray_actors`` available in this process."""
    register_backend("ray_actors", RayActorBackend)
