"""The input files of a build as provenance records them: a resolved path and the file's sha256.

Every row's ``provenance`` names its file with ``{"file": PATH, "sha256": HEX, ...}``; the build
report lists each source's files the same way. PATH is the resolved path (never a ``${var}``
template), written so that the outputs do not depend on where the repository or a run
directory happens to live (a copied repository reuses its stages, two run directories give the
same bytes):

* a file inside the build folder (the generated demo corpus): relative to the build folder,
  ``corpus/meddialog_raw_zh.txt``;
* a file inside the repository, built into a folder inside the repository: relative to the build
  folder too, ``../../../corpus/x.jsonl``;
* any other file: its absolute path.

Relative paths in provenance are always relative to the build folder (the one holding
``build_report.json``). The absolute paths of every input are in the build's run information
(``medalign data build`` prints them; the data stage puts them in its manifest's metrics).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from data_recipes.recipe_load import REPO_ROOT, ResolvedRecipe
from data_recipes.staging import Staging
from medalign.artifacts import sha256_file


@dataclass(frozen=True)
class InputFile:
    """One input file: its real path, how provenance shows it, its sha256 and size."""

    path: Path             # absolute, resolved
    recorded: str          # the path provenance and the report show (see the module doc)
    sha256: str
    bytes: int

    def provenance(self) -> dict[str, str]:
        """The head of a row's provenance for a record of this file."""
        return {"file": self.recorded, "sha256": self.sha256}

    def to_json(self) -> dict:
        return {"path": self.recorded, "sha256": self.sha256, "bytes": self.bytes}


def recorded_path(file: Path, staging: Staging) -> str:
    """How provenance shows ``file`` for a build into ``staging.out`` (see the module doc)."""
    file = staging.final(Path(file).resolve())
    out = staging.out
    if file.is_relative_to(out):
        return file.relative_to(out).as_posix()
    if file.is_relative_to(REPO_ROOT) and out.is_relative_to(REPO_ROOT):
        return Path(os.path.relpath(file, out)).as_posix()
    return str(file)


class BuildInputs:
    """The hashed input files of a build: every source file and every decontamination file."""

    def __init__(self, resolved: ResolvedRecipe, staging: Staging) -> None:
        self.files: dict[str, InputFile] = {}
        for file in {f for files in (*resolved.source_files, *resolved.eval_files) for f in files}:
            path = Path(file).resolve()
            self.files[str(file)] = InputFile(path, recorded_path(path, staging), sha256_file(path),
                                              path.stat().st_size)

    def __getitem__(self, file: str | Path) -> InputFile:
        return self.files[str(file)]

    def recorded(self, file: str | Path) -> str:
        """The recorded path of an input file (the file itself when it is not an input)."""
        found = self.files.get(str(file))
        return found.recorded if found else str(file)

    def provenance(self) -> dict[str, dict[str, str]]:
        """File (as the recipe's file list names it) -> the head of its rows' provenance."""
        return {name: f.provenance() for name, f in self.files.items()}

    def absolute(self, staging: Staging) -> dict[str, str]:
        """Recorded path -> the absolute path the input has once the build is committed."""
        return {f.recorded: str(staging.final(f.path)) for f in self.files.values()}
