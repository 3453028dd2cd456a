"""Model outputs for eval cases, cached by content, and which checkpoint a model reference means.

    ref = resolve_checkpoint("runs/quickstart/ppo-1a2b3c4d5e6f")    # -> ".../ppo-1a2b3c4d5e6f/model"
    texts, stats = cached_generations(ref, "ppo", cases, spec, seed, "auto", cache_dir, ctx)
    texts, stats = cached_chat_generations(ref, "ppo", chats, spec, seed, "auto", cache_dir, ctx)  # any chats

A model is named by a checkpoint directory, a stage directory (``runs/<job>/<stage>-<key>``: its
``model/``; a stage whose manifest says ``failed`` is refused, never evaluated as if it had
succeeded) or a hub id. A generation is cached under the sha256 of (model digest, the chat's
messages, the sampling spec, the seed): the model digest is the stage's output digest (what
``medalign run`` records) or the checkpoint's content digest (medalign.executor.input_digest), so
a retrained checkpoint at the same path is a new model and an unchanged one is never regenerated.
The cache is one JSON-lines file per model digest under ``cache_dir``; only the missing chats are
generated (in one call, through ``alignment.stages.sample.generate_from_checkpoint``). A doctor's
turns in multi-turn conversations (alignment/evaluation/multi_turn.py) go through the same cache,
one call per turn for every conversation still running.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

from alignment.generation import SamplingSpec
from alignment.evaluation.cases import Case
from medalign.artifacts import MANIFEST, read_manifest
from medalign.config import canonical_json
from medalign.errors import UserError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_checkpoint(ref: str) -> str:
    """The checkpoint a model reference names (see the module doc); UserError saying what to fix."""
    path = Path(ref)
    stage_dir = path if (path / MANIFEST).is_file() else (
        path.parent if path.name == "model" and (path.parent / MANIFEST).is_file() else None)
    if stage_dir is not None:
        manifest = read_manifest(stage_dir) or {}
        if manifest.get("status") != "ok":
            why = "; ".join(manifest.get("problems") or []) or "no status ok in its manifest.json"
            raise UserError(f"{ref}: stage {manifest.get('name', stage_dir.name)} did not succeed ({why}): "
                            "a failed stage is never evaluated; rerun it")
        if not (stage_dir / "model").is_dir():
            raise UserError(f"{ref}: stage directory without a model/ checkpoint (is it a training stage?)")
        return str(stage_dir / "model")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"{ref}: not a checkpoint (no config.json) nor a stage directory (no manifest.json)")
        return str(path)
    if path.exists() or not _HUB_ID.match(ref):
        raise UserError(f"{ref}: no such checkpoint directory (give a checkpoint, a stage directory "
                        "runs/<job>/<stage>-<key>, or a hub id)")
    return ref


def model_digest(checkpoint: str) -> str:
    """The model's identity in cache keys (medalign.executor.input_digest)."""
    from medalign.executor import input_digest

    return input_digest(checkpoint)


def generation_key(digest: str, messages: list[dict], spec: SamplingSpec, seed: int) -> str:
    """The cache key of one chat's generation by one model."""
    ident = {"model": digest, "messages": messages, "sampling": spec.model_dump(mode="json"), "seed": seed}
    return hashlib.sha256(canonical_json(ident).encode("utf-8")).hexdigest()[:32]


def _cache_file(cache_dir: Path, digest: str) -> Path:
    return cache_dir / f"{hashlib.sha256(digest.encode('utf-8')).hexdigest()[:16]}.jsonl"


def _read_cache(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue                      # a line cut by a kill: regenerate that chat
        out[row["key"]] = row
    return out


def cached_generations(checkpoint: str, label: str, cases: list[Case], spec: SamplingSpec, seed: int, dtype,
                       cache_dir: str | Path, ctx, digest: str | None = None) -> tuple[list[str], dict]:
    """One response per case (in order) and ``{"generated", "cached", "wall_s", "digest"}``."""
    return cached_chat_generations(checkpoint, label, [c.messages for c in cases], spec, seed, dtype, cache_dir,
                                   ctx, digest, [c.key for c in cases])


def cached_chat_generations(checkpoint: str, label: str, chats: list[list[dict]], spec: SamplingSpec, seed: int,
                            dtype, cache_dir: str | Path, ctx, digest: str | None = None,
                            ids: list[str] | None = None) -> tuple[list[str], dict]:
    """One response per chat (each a message list ending with the user's turn), in order, and
    ``{"generated", "cached", "wall_s", "digest"}``. ``digest``: the model's digest when known
    (:func:`model_digest` hashes the checkpoint otherwise); ``ids`` name the chats in the cache."""
    from alignment.stages.sample import generate_from_checkpoint

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = digest or model_digest(checkpoint)
    path = _cache_file(cache_dir, digest)
    known = _read_cache(path)
    keys = [generation_key(digest, m, spec, seed) for m in chats]
    todo = [i for i, k in enumerate(keys) if k not in known]
    t0 = time.perf_counter()
    if todo:
        outs = generate_from_checkpoint(checkpoint, label, [{"messages": chats[i]} for i in todo],
                                        spec, 1, seed, dtype, ctx)
        with open(path, "a", encoding="utf-8") as f:
            for i, gens in zip(todo, outs):
                row = {"key": keys[i], "case": ids[i] if ids else None, "text": gens[0].text,
                       "n_tokens": gens[0].n_tokens, "finished": gens[0].finished}
                known[keys[i]] = row
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    stats = {"generated": len(todo), "cached": len(chats) - len(todo),
             "wall_s": round(time.perf_counter() - t0, 3), "digest": digest}
    return [known[k]["text"] for k in keys], stats
