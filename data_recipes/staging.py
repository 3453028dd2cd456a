"""A build is written into a temporary folder beside its output folder and moved in when complete.

    staging = Staging(out)           # a fresh, empty  <parent>/.<name>.building/
    ... write everything into staging.dir ...
    staging.commit()                 # the previous build's entries leave out/, the new ones move in
    # or staging.abort(): out/ is untouched, the temporary folder is removed

So a build that fails (a bad record count, a full disk, Ctrl-C) leaves the previous build in
``out`` exactly as it was, never a mix of old and new files. ``commit`` moves whole entries
(``sft/``, ``build_report.json`` ...) with renames on one file system; entries of ``out`` that a
build does not own (a stage's ``logs/``) stay. A failed build's ``quarantine.jsonl`` is kept
beside ``out`` (``<name>.failed-quarantine.jsonl``) so the records that made it fail can be read.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from data_recipes.transforms import OUTPUT_KINDS

# what a build writes into its folder (the previous build's copies are replaced as a whole)
BUILD_ENTRIES = (*OUTPUT_KINDS, "build_report.json", "quarantine.jsonl", "stats")
QUARANTINE = "quarantine.jsonl"


class Staging:
    """The temporary folder of one build into ``out`` (see the module doc)."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out).resolve()
        self.dir = self.out.parent / f".{self.out.name}.building"
        self.failed_quarantine = self.out.parent / f"{self.out.name}.failed-quarantine.jsonl"
        shutil.rmtree(self.dir, ignore_errors=True)      # left by a build that was killed
        self.dir.mkdir(parents=True)

    def final(self, path: str | Path) -> Path:
        """Where ``path`` (inside the temporary folder or not) is once the build is committed."""
        path = Path(path).resolve()
        return self.out / path.relative_to(self.dir) if path.is_relative_to(self.dir) else path

    def commit(self) -> None:
        """Replace the previous build's entries of ``out`` by the new ones; remove the temporary folder."""
        self.out.mkdir(parents=True, exist_ok=True)
        old = self.out.parent / f".{self.out.name}.previous"
        shutil.rmtree(old, ignore_errors=True)
        old.mkdir()
        new = {p.name for p in self.dir.iterdir()}
        for name in sorted(set(BUILD_ENTRIES) | new):
            if (self.out / name).exists():
                os.replace(self.out / name, old / name)
        for name in sorted(new):
            os.replace(self.dir / name, self.out / name)
        shutil.rmtree(old, ignore_errors=True)
        self.dir.rmdir()
        self.failed_quarantine.unlink(missing_ok=True)

    def abort(self) -> Path | None:
        """Remove the temporary folder, ``out`` untouched; returns where the failed build's
        quarantined records are kept (None when it quarantined nothing)."""
        kept = None
        quarantine = self.dir / QUARANTINE
        if quarantine.is_file() and quarantine.stat().st_size:
            os.replace(quarantine, self.failed_quarantine)
            kept = self.failed_quarantine
        shutil.rmtree(self.dir, ignore_errors=True)
        return kept
