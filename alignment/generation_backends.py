"""Where a stage's responses are generated: the ``generation`` block of sample, eval and rsft.

    generation:
      backend: in_process        # this process, transformers' generate() (the default)
      backend: endpoint          # any OpenAI-compatible server: vLLM, SGLang, TGI, transformers serve
      endpoint: {base_url: http://gpu-node:8000/v1, model: medalign-policy, api_key_env: VLLM_KEY}
      backend: ray_actors        # a Ray Data actor pool, one model replica per actor
      replicas: 4
      replica_gpus: 1

The decoding spec stays ``sampling`` (:class:`alignment.generation.SamplingSpec`) whatever the
backend. Every backend answers one :class:`GenerationRequest` with one
:class:`GenerationResult`: ``k`` :class:`~alignment.generation.Generation` per prompt, in order,
and an ``info`` record of how they were made (backend, endpoint, model, what seeds mean there),
which the stages put in their metrics and so in the manifest.

Backends are looked up by name in a registry. ``in_process`` and ``endpoint`` live here
(:mod:`alignment.generation_endpoint`); ``ray_actors`` is Ray code, so ``jobs/`` registers it
(:func:`register_backend`) in the processes where a job runs its stages on Ray: ``alignment``
never imports ray. Asked for where nothing registered it (``medalign train``, ``medalign run
--no-ray``), ``ray_actors`` fails with a line that says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Protocol

from pydantic import Field, field_validator, model_validator

from alignment.generation import Generation, SamplingSpec
from judges.config import BudgetConfig, PriceConfig, RateLimitConfig, RetryConfig
from medalign.config import StrictModel
from medalign.errors import UserError


class EndpointSpec(StrictModel):
    """An OpenAI-compatible chat endpoint serving the checkpoint (``backend: endpoint``).

    Either ``base_url`` names a running server (it must serve the stage's checkpoint: medalign
    cannot check the weights behind a URL, so the manifest records the URL and model id), or
    ``launch`` is a command medalign starts for each checkpoint it samples and stops after, e.g.
    ``["vllm", "serve", "{model}", "--port", "{port}"]`` (``{model}``: the checkpoint path,
    ``{port}``: a free port; readiness is ``GET /health``). rsft samples a new checkpoint each
    iteration, so it needs ``launch``."""

    base_url: str | None = None                           # http(s)://host:port/v1 (with launch: may hold {port}; None: http://127.0.0.1:{port}/v1)
    model: str | None = None                              # model id to request (None: the checkpoint path, as `vllm serve PATH` names it)
    api_key_env: str | None = None                        # env var holding the server's API key (never logged)
    launch: list[str] | None = None                       # command started per checkpoint ({model}, {port}); None: base_url is already serving
    ready_timeout_s: float = Field(600.0, gt=0)           # how long a launched server may take to answer /health
    concurrency: int = Field(8, ge=1)                     # requests in flight at most
    timeout_s: float = Field(600.0, gt=0)                 # per request
    retry: RetryConfig = Field(default_factory=RetryConfig)        # 429, 5xx, timeouts (the judges' retry spec)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)  # rpm / tpm budget, x-ratelimit-* headers
    budget: BudgetConfig = Field(default_factory=BudgetConfig)     # stop before these limits (a rerun resumes from the cache)
    price: PriceConfig = Field(default_factory=PriceConfig)        # per million tokens, for the cost figure and max_cost

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s):// URL of an OpenAI-compatible API (ending in /v1)")
        return v.rstrip("/") if v else v


class GenerationSpec(StrictModel):
    """Which backend generates a stage's responses (``generation`` in sample, eval, rsft)."""

    backend: Literal["in_process", "endpoint", "ray_actors"] = "in_process"  # where generate() runs
    endpoint: EndpointSpec = Field(default_factory=EndpointSpec)  # backend: endpoint
    replicas: int = Field(2, ge=1)                        # backend: ray_actors: model replicas (actors)
    replica_cpus: float = Field(1.0, gt=0)                # backend: ray_actors: CPUs per replica
    replica_gpus: float = Field(0.0, ge=0)                # backend: ray_actors: GPUs per replica

    @model_validator(mode="after")
    def _endpoint_named(self) -> "GenerationSpec":
        e = self.endpoint
        if self.backend == "endpoint" and e.base_url is None and e.launch is None:
            raise ValueError("backend endpoint needs endpoint.base_url (a running server) or "
                             "endpoint.launch (a command medalign starts per checkpoint)")
        return self


@dataclass
class GenerationRequest:
    """One stage's generation: ``k`` responses to each prompt from the checkpoint at ``ref``."""

    ref: str                                  # checkpoint path or hub id
    role: str                                 # "policy", "baseline": for messages and the progress bar
    prompts: list[list[dict]]                 # conversations ending with a user turn
    sampling: SamplingSpec
    k: int
    seed: int
    dtype: str = "auto"
    device: str = "cpu"
    progress: bool = False
    work_dir: Path | None = None              # the stage directory: cache/ and logs/ go there
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("medalign"))


@dataclass
class GenerationResult:
    generations: list[list[Generation]]       # k per prompt, in prompt order
    info: dict                                # how they were made (into the stage's metrics)


class GenerationBackend(Protocol):
    def generate(self, request: GenerationRequest) -> GenerationResult: ...


_BACKENDS: dict[str, Callable[[GenerationSpec], GenerationBackend]] = {}


def register_backend(name: str, factory: Callable[[GenerationSpec], GenerationBackend]) -> None:
    """Make ``generation.backend: name`` available in this process (``jobs/`` registers ray_actors)."""
    _BACKENDS[name] = factory


def backend_for(spec: GenerationSpec) -> GenerationBackend:
    if spec.backend == "endpoint":
        from alignment.generation_endpoint import EndpointBackend
        return EndpointBackend(spec.endpoint)
    if spec.backend == "in_process":
        return InProcessBackend()
    if spec.backend not in _BACKENDS:
        raise UserError(f"generation.backend: {spec.backend} runs on Ray and is available when a job "
                        "runs its stages on Ray (medalign run JOB, not --no-ray and not medalign train); "
                        "use in_process or endpoint here")
    return _BACKENDS[spec.backend](spec)


class InProcessBackend:
    """transformers' ``generate`` in this process (:func:`alignment.generation.generate_responses`)."""

    def generate(self, request: GenerationRequest) -> GenerationResult:
        from alignment.generation import generate_responses
        from alignment.models import load_causal_lm, load_tokenizer

        tokenizer = load_tokenizer(request.ref, request.role)
        model = load_causal_lm(request.ref, request.role, device=request.device, dtype=request.dtype)
        gens = generate_responses(model, tokenizer, request.prompts, request.sampling, k=request.k,
                                  seed=request.seed, progress=request.progress,
                                  desc=f"sampling ({request.role})")
        return GenerationResult(gens, {"backend": "in_process", "seeds": "torch RNG seeded with seed + "
                                       "batch index per generate call (reproducible on the same device)"})


def generate(request: GenerationRequest, spec: GenerationSpec | None = None) -> GenerationResult:
    """Run ``request`` on the backend ``spec`` names (in-process when None)."""
    return backend_for(spec or GenerationSpec()).generate(request)
