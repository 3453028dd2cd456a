"""``generation.backend: endpoint``: responses from an OpenAI-compatible server.

vLLM, SGLang, TGI and ``transformers serve`` serve a checkpoint behind ``/v1/chat/completions``;
the server applies the checkpoint's chat template, so a prompt is sent as its messages. Each
response is one request (``n`` is not supported everywhere) through the judges' client
(:class:`judges.client.ChatClient`: concurrency, retries with Retry-After, pacing to a rate
limit), with the judges' completion cache and budget:

* request body: ``model``, ``messages``, ``temperature``, ``top_p``, ``max_tokens`` (=
  ``sampling.max_new_tokens``), ``seed``, and ``top_k`` when it is > 0 (an extension vLLM and
  SGLang accept; a server that rejects it answers 4xx). ``sampling.max_prompt_tokens`` is not
  applied: the server sees whole prompts (one too long for its context is a 4xx, an error).
* seeds: request ``j`` of prompt ``i`` carries ``seed = (seed * 1000003 + i * 1009 + j) mod
  2**31``. What a seed guarantees is the server's business and is recorded in the manifest as
  the ``seeds`` note: OpenAI calls it best effort (``system_fingerprint`` says when the backend
  changed; the fingerprints seen are recorded); vLLM makes a seeded request reproducible on the
  same hardware and version only with batch invariance (``VLLM_BATCH_INVARIANT=1``), otherwise
  batching with other requests may change it; ``transformers serve`` seeds torch's global RNG
  per request, so concurrent sampled requests interleave. Greedy decoding (temperature 0) needs
  no seed: one request per prompt, copied ``k`` times.
* cache: ``<work_dir>/cache/generations/completions.jsonl`` keyed by endpoint, model, messages,
  decoding and seed; a killed stage resumes without asking again (``cache/`` is outside the
  stage's output digest).
* a request that fails after its retries, or one the budget stops, fails the stage with one line
  (the cache keeps what was answered).

``launch`` starts the server per checkpoint (:mod:`alignment.generation_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time

from alignment.generation import Generation, SamplingSpec
from alignment.generation_backends import EndpointSpec, GenerationRequest, GenerationResult
from medalign.config import canonical_json
from medalign.errors import UserError

SEED_NOTE = ("sent as each request's `seed`; reproducibility is the server's: best effort at OpenAI "
             "(see system_fingerprints), vLLM only with VLLM_BATCH_INVARIANT=1 on the same hardware "
             "and version, transformers serve only one request at a time")


def request_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    return (seed * 1_000_003 + prompt_index * 1009 + sample_index) % 2**31


def request_params(sampling: SamplingSpec, model: str) -> dict:
    """The request body less messages and seed."""
    params = {"model": model, "temperature": sampling.temperature, "top_p": sampling.top_p,
              "max_tokens": sampling.max_new_tokens}
    if sampling.top_k > 0:
        params["top_k"] = sampling.top_k
    return params


class EndpointBackend:
    def __init__(self, spec: EndpointSpec):
        self.spec = spec

    def generate(self, request: GenerationRequest) -> GenerationResult:
        from alignment.generation_server import launched_server
        from judges.api import run_sync

        key = _api_key(self.spec)
        model = self.spec.model or request.ref
        with contextlib.ExitStack() as stack:
            base_url = self.spec.base_url
            if self.spec.launch:
                log_dir = (request.work_dir / "logs") if request.work_dir else None
                base_url = stack.enter_context(launched_server(self.spec, request.ref, log_dir, request.logger))
            gens, info = run_sync(_generate_all(self.spec, base_url, key, model, request))
        info.update(backend="endpoint", base_url=base_url if not self.spec.launch else "launched",
                    launch=self.spec.launch, model=model, seeds=SEED_NOTE,
                    max_prompt_tokens="not applied: the server sees whole prompts")
        return GenerationResult(gens, info)


def _api_key(spec: EndpointSpec) -> str | None:
    if spec.api_key_env is None:
        return None
    key = os.environ.get(spec.api_key_env)
    if not key:
        raise UserError(f"generation.endpoint.api_key_env: environment variable {spec.api_key_env} "
                        "is not set: export the endpoint's API key")
    return key


def _cache_key(identity: str, model: str, messages: list[dict], params: dict, seed: int | None) -> str:
    payload = canonical_json({"endpoint": identity, "model": model, "messages": messages,
                              "params": params, "seed": seed})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


async def _generate_all(spec: EndpointSpec, base_url: str, key: str | None, model: str,
                        request: GenerationRequest) -> tuple[list[list[Generation]], dict]:
    """Every request, ``spec.concurrency`` at a time; (generations, info)."""
    from judges.budget import Budget, estimate_tokens
    from judges.cache import CompletionCache
    from judges.client import ChatClient

    greedy = request.sampling.temperature == 0
    params = request_params(request.sampling, model)
    identity = f"launch:{request.ref}" if spec.launch else base_url
    jobs = [(i, j) for i in range(len(request.prompts)) for j in range(1 if greedy else request.k)]
    cache_dir = request.work_dir / "cache" / "generations" if request.work_dir else None
    cache = CompletionCache(cache_dir) if cache_dir else None
    budget = Budget(spec.budget, spec.price)
    client = ChatClient(base_url, key, concurrency=spec.concurrency, timeout_s=spec.timeout_s,
                        retry=spec.retry, rate_limit=spec.rate_limit, seed=request.seed)
    answers: dict[tuple[int, int], dict] = {}
    failures: list[str] = []
    bar = _bar(len(jobs), request)
    queue = list(reversed(jobs))

    async def one(i: int, j: int) -> None:
        messages = request.prompts[i]
        seed = None if greedy else request_seed(request.seed, i, j)
        body = {**params, **({} if seed is None else {"seed": seed})}
        ck = _cache_key(identity, model, messages, params, seed)
        hit = cache.get(ck) if cache is not None else None
        if hit is None:
            reservation = budget.try_reserve(estimate_tokens(messages), request.sampling.max_new_tokens)
            if reservation is None:
                failures.append(f"budget: {budget.stopped}")
                return
            from judges.client import CallFailed
            try:
                reply = await client.complete(messages, body, estimate_tokens(messages))
            except CallFailed as failed:
                budget.settle(reservation, 0, 0)
                failures.append(f"prompt {i}: {failed.error}")
                return
            budget.settle(reservation, reply.prompt_tokens, reply.completion_tokens)
            hit = {"text": reply.text or "", "finish_reason": reply.finish_reason,
                   "completion_tokens": reply.completion_tokens, "model": reply.model,
                   "fingerprint": reply.system_fingerprint}
            if cache is not None:
                cache.put(ck, hit)
        answers[(i, j)] = hit
        if bar is not None:
            bar.update(1)

    async def worker() -> None:
        while queue:
            await one(*queue.pop())

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(min(spec.concurrency, len(jobs)) or 1)))
    finally:
        await client.aclose()
        if cache is not None:
            cache.close()
        if bar is not None:
            bar.close()
    if failures:
        raise UserError(f"generation over {base_url}: {len(failures)} of {len(jobs)} requests failed or "
                        f"were not sent (first: {failures[0]}); a rerun asks only for those (cache)")
    gens = [[_generation(answers[(i, 0 if greedy else j)]) for j in range(request.k)]
            for i in range(len(request.prompts))]
    info = {"requests": len(jobs), "wall_s": round(time.perf_counter() - started, 3),
            "tokens": budget.tokens, "cost": budget.cost if budget.price.known else None,
            "served_models": sorted({a["model"] for a in answers.values() if a.get("model")}),
            "system_fingerprints": sorted({a["fingerprint"] for a in answers.values() if a.get("fingerprint")}),
            "rate": client.rate.stats.to_dict()}
    return gens, info


def _generation(answer: dict) -> Generation:
    return Generation(text=(answer.get("text") or "").strip(), n_tokens=int(answer.get("completion_tokens") or 0),
                      finished=answer.get("finish_reason") == "stop")


def _bar(total: int, request: GenerationRequest):
    if not request.progress or total == 0:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=f"sampling ({request.role}, endpoint)", unit="request")

