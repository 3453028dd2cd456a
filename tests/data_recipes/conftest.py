"""Fixtures of the data_recipes tests.

Helpers D1 (synthetic world, readers) and D2 (recipes, builds) both add fixtures here; each
keeps its fixtures in its own marked block.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

# ---------------------------------------------------------------------------------------------
# D2: recipes and builds
# ---------------------------------------------------------------------------------------------

QUICKSTART_SMALL = ["outputs.sft.total=400"]       # the quickstart mix on a 200-consultation corpus


@pytest.fixture(scope="session")
def recipe_corpus(tmp_path_factory) -> Path:
    """The synthetic demo corpus, 200 consultations, Chinese and English (written once)."""
    from data_recipes.synthetic.generate import write_corpus

    out = tmp_path_factory.mktemp("recipe_corpus")
    write_corpus(out, n_consultations=200, seed=0, languages=("zh", "en"))
    return out


@pytest.fixture(scope="session")
def quickstart_build(recipe_corpus, tmp_path_factory) -> tuple[Path, dict]:
    """The quickstart recipe built on ``recipe_corpus`` (sft total 400): (out dir, report)."""
    from data_recipes.build import build
    from data_recipes.recipe_load import find_recipe, load_recipe

    out = tmp_path_factory.mktemp("quickstart_build")
    resolved = load_recipe(find_recipe("quickstart"), QUICKSTART_SMALL, {"corpus": str(recipe_corpus)})
    return out, build(resolved, out)


@pytest.fixture
def write_recipe(tmp_path):
    """write_recipe(yaml_text, name="recipe.yaml") -> path of the dedented text in tmp_path."""
    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path
    return write

# ------------------------------------------------------------------------------ end of D2 block

# ---------------------------------------------------------------------------------------------
# D1: synthetic world, corpus generator, readers
# ---------------------------------------------------------------------------------------------

READER_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "readers"


@pytest.fixture(scope="session")
def reader_fixtures() -> Path:
    """tests/data_recipes/fixtures/readers: one small hand-written file per reader format."""
    return READER_FIXTURES


@pytest.fixture
def read_all():
    """read_all(path, fmt, **options) -> (records, quarantined), both lists."""
    from data_recipes.readers import read_source
    from data_recipes.records import Quarantined

    def read(path, fmt: str, **options):
        items = list(read_source(path, fmt, **options))
        return ([i for i in items if not isinstance(i, Quarantined)],
                [i for i in items if isinstance(i, Quarantined)])
    return read


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> tuple[Path, dict]:
    """A small demo corpus in both languages, written once: (directory, summary)."""
    from data_recipes.synthetic.generate import write_corpus

    out = tmp_path_factory.mktemp("synthetic_corpus")
    return out, write_corpus(out, n_consultations=120, seed=3, languages=("zh", "en"))

# ------------------------------------------------------------------------------ end of D1 block
