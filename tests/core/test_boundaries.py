"""Package boundaries: only jobs/ imports ray."""

from __future__ import annotations

import subprocess
import sys

import pytest

LIBRARIES = ["medalign", "medalign.config", "medalign.artifacts", "medalign.cli", "alignment",
             "judges", "data_recipes"]


@pytest.mark.parametrize("module", LIBRARIES)
def test_library_imports_without_ray(module):
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_stage_and_api_modules_import_without_ray(repo_root):
    """Every module of the three libraries imports without pulling in ray."""
    modules = []
    for package in ("alignment", "judges", "data_recipes"):
        for path in sorted((repo_root / package).rglob("*.py")):
            rel = path.relative_to(repo_root).with_suffix("")
            modules.append(".".join(rel.parts).removesuffix(".__init__"))
    code = ("import sys, importlib\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m)\n"
            "    assert 'ray' not in sys.modules, f'{m} imported ray'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)


def test_no_source_file_of_the_libraries_mentions_a_ray_import(repo_root):
    offenders = []
    for package in ("alignment", "judges", "data_recipes", "medalign"):
        for path in (repo_root / package).rglob("*.py"):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip().startswith(("import ray", "from ray")):
                    offenders.append(f"{path}: {line.strip()}")
    assert offenders == []
