"""Package boundaries: only jobs/ imports ray, and no library imports jobs/."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

LIBRARY_PACKAGES = ("alignment", "judges", "data_recipes", "medalign")
LIBRARIES = ["medalign", "medalign.config", "medalign.artifacts", "medalign.cli", "alignment",
             "judges", "data_recipes"]
_IMPORT = re.compile(r"^\s*(import|from)\s+(ray|jobs)\b")


def _modules(repo_root) -> list[str]:
    modules = []
    for package in LIBRARY_PACKAGES:
        for path in sorted((repo_root / package).rglob("*.py")):
            rel = path.relative_to(repo_root).with_suffix("")
            modules.append(".".join(rel.parts).removesuffix(".__init__"))
    return modules


@pytest.mark.parametrize("module", LIBRARIES)
def test_library_imports_without_ray(module):
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_library_module_imports_without_ray_or_jobs(repo_root):
    """Every module of alignment, judges, data_recipes and medalign imports without pulling in
    ray or any module of jobs/ (medalign.cli finds jobs.cli by name, when it builds its parser)."""
    modules = _modules(repo_root)
    code = ("import sys, importlib\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m)\n"
            "    assert 'ray' not in sys.modules, f'{m} imported ray'\n"
            "    bad = sorted(n for n in sys.modules if n == 'jobs' or n.startswith('jobs.'))\n"
            "    assert not bad, f'{m} imported {bad}'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)


@pytest.mark.parametrize("package", LIBRARY_PACKAGES)
def test_no_source_line_of_a_library_imports_ray_or_jobs(repo_root, package):
    """Also lazy imports inside functions: a library never reaches into jobs/ (the Ray side)."""
    offenders = []
    for path in sorted((repo_root / package).rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _IMPORT.match(line):
                offenders.append(f"{path.relative_to(repo_root)}:{number}: {line.strip()}")
    assert offenders == []

