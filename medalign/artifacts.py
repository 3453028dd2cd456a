"""Stage artifacts: content digests, stage keys and ``manifest.json``.

A stage writes one directory ``runs/<job>/<stage>-<key>/`` where ``key`` hashes the stage name,
its resolved config and the digests of its inputs (see :func:`stage_key`). The directory is
complete when its ``manifest.json`` says ``status: ok``; the manifest is written last, atomically,
so a stage killed midway leaves a directory without one and the next run resumes it. A stage that
raised or failed its acceptance rule gets a manifest with ``status: failed`` and the reasons, and
the next run redoes it.

Nothing here resolves "latest": a directory is found only by recomputing its key.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from medalign.config import canonical_json

MANIFEST = "manifest.json"
# The commit of the checkout a job was submitted from (``medalign submit`` sets it: the copy of
# the working directory a cluster runs has no .git); the manifests record it instead of asking git.
GIT_COMMIT_ENV = "MEDALIGN_GIT_COMMIT"
_SKIP_FOR_DIGEST = {MANIFEST}
_VERSIONED_PACKAGES = (
    "medalign", "torch", "transformers", "trl", "peft", "datasets", "deepspeed", "ray",
    "openai", "pydantic", "tokenizers", "accelerate", "numpy", "pyarrow",
)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of one file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def digest_path(path: str | Path, exclude: set[str] | frozenset[str] = frozenset()) -> str:
    """Content digest of a file or a directory tree (relative paths and bytes, sorted).

    ``manifest.json`` at the top of a directory and top-level names in ``exclude`` are left out,
    so the digest speaks of a stage's outputs, not of its bookkeeping.
    """
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        raise FileNotFoundError(f"cannot digest {path}: no such file or directory")
    h = hashlib.sha256()
    skip = _SKIP_FOR_DIGEST | set(exclude)
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel.split("/", 1)[0] in skip:
            continue
        h.update(rel.encode("utf-8") + b"\0" + sha256_file(file).encode("ascii") + b"\n")
    return h.hexdigest()


def stage_key(stage: str, resolved_config: Any, input_digests: dict[str, str], length: int = 12) -> str:
    """Hash of (stage name, resolved config, input digests): names the stage's directory."""
    payload = canonical_json({"stage": stage, "config": resolved_config, "inputs": input_digests})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The current git commit (with ``-dirty`` when the tree has changes), or None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide a result."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


_SECRET_WORDS = ("key", "token", "secret", "password")


def redact_command(command: str) -> str:
    """Hide the value of any ``name=value`` argument whose name looks like a secret."""
    words = []
    for word in command.split(" "):
        name, eq, _ = word.partition("=")
        words.append(f"{name}=***" if eq and any(w in name.lower() for w in _SECRET_WORDS) else word)
    return " ".join(words)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON to ``path`` via a temp file and rename, so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_manifest(out_dir: str | Path, *, stage: str, key: str, config: Any,
                   inputs: dict[str, dict], metrics: dict, timings: dict,
                   extra: dict | None = None, exclude: frozenset[str] = frozenset(),
                   status: str = "ok", problems: list[str] | None = None) -> dict:
    """Digest the outputs of ``out_dir`` and write its manifest last. Returns the manifest.

    ``inputs`` maps an input name to ``{"path": ..., "digest": ...}``; top-level names in
    ``exclude`` (logs, checkpoints) are bookkeeping and stay out of the output digest and list.
    ``status`` is ``ok`` or ``failed`` (with ``problems`` saying why): only an ``ok`` manifest
    makes a stage complete (:func:`is_successful`).
    """
    out_dir = Path(out_dir)
    outputs = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*")
                     if p.is_file() and p.name != MANIFEST
                     and p.relative_to(out_dir).parts[0] not in exclude)
    manifest = {
        "stage": stage,
        "key": key,
        "status": status,
        "problems": list(problems or []),
        "config": config,
        "inputs": inputs,
        "outputs": {"digest": digest_path(out_dir, exclude=exclude), "files": outputs},
        "metrics": metrics,
        "timings": timings,
        "versions": package_versions(),
        "git_commit": os.environ.get(GIT_COMMIT_ENV) or git_commit(Path(__file__).resolve().parent),
        "host": platform.node(),
        "command": redact_command(os.environ.get("MEDALIGN_COMMAND", " ".join(sys.argv))),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    write_json_atomic(out_dir / MANIFEST, manifest)
    return manifest


def is_successful(manifest: dict | None) -> bool:
    """True for the manifest of a stage that finished and passed its acceptance rule."""
    return bool(manifest) and manifest.get("status") == "ok"


def read_manifest(out_dir: str | Path) -> dict | None:
    """The manifest of a complete stage directory, or None when the stage is not complete."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
