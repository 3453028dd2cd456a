"""The one config system: strict models, line-accurate errors, overrides, hashing."""

from __future__ import annotations

import textwrap

import pytest

from medalign.config import (ConfigError, StrictModel, apply_overrides, config_hash, load_config,
                             load_yaml, parse_override)


class Inner(StrictModel):
    lr: float = 1e-5
    layers: list[int] = []


class Item(StrictModel):
    name: str
    weight: float = 1.0


class Top(StrictModel):
    name: str
    inner: Inner = Inner()
    items: list[Item] = []


def _write(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_typo_names_file_line_and_field(tmp_path):
    path = _write(tmp_path, """\
        name: x
        inner:
          lr: 0.1
          lerning_rate: 3
        """)
    with pytest.raises(ConfigError) as e:
        load_config(path, Top)
    assert e.value.problems == [f"{path}:4: inner.lerning_rate: Extra inputs are not permitted"]


def test_wrong_type_in_a_list_item_names_its_line(tmp_path):
    path = _write(tmp_path, """\
        name: x
        items:
          - name: a
          - name: b
            weight: heavy
        """)
    with pytest.raises(ConfigError) as e:
        load_config(path, Top)
    (problem,) = e.value.problems
    assert problem.startswith(f"{path}:5: items.1.weight: Input should be a valid number")


def test_missing_field_and_syntax_error(tmp_path):
    path = _write(tmp_path, "inner: {lr: 1}\n")
    with pytest.raises(ConfigError, match=r"c.yaml:1: name: Field required"):
        load_config(path, Top)
    path = _write(tmp_path, "name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c.yaml:\d+: YAML syntax error"):
        load_config(path, Top)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.yaml", Top)


def test_overrides_parse_yaml_values_and_reach_nested_keys(tmp_path):
    path = _write(tmp_path, """\
        name: x
        items:
          - name: a
        """)
    cfg = load_config(path, Top, overrides=["inner.lr=3e-4", "inner.layers=[1, 2]", "items.0.weight=2"])
    assert cfg.inner.lr == 3e-4 and cfg.inner.layers == [1, 2] and cfg.items[0].weight == 2.0
    assert parse_override("a.b=null") == (["a", "b"], None)
    assert parse_override("a=true") == (["a"], True)
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        parse_override("novalue")
    with pytest.raises(ConfigError, match="not an index"):
        apply_overrides(load_yaml(path), ["items.5.weight=1"])
    with pytest.raises(ConfigError, match=r"inner.lrr: Extra inputs"):
        load_config(path, Top, overrides=["inner.lrr=1"])


def test_config_hash_is_order_independent_and_sensitive():
    a = Top(name="x", inner=Inner(lr=1e-5))
    assert config_hash(a) == config_hash(Top.model_validate({"inner": {"lr": 1e-5}, "name": "x"}))
    assert config_hash(a) != config_hash(Top(name="x", inner=Inner(lr=2e-5)))


class Renamed(StrictModel):
    renamed = {"lr": "learning_rate", "betas": ("adam_beta1", "adam_beta2"), "beta": "kl.coef"}

    learning_rate: float = 1e-5


class HoldsRenamed(StrictModel):
    name: str = "x"
    optim: Renamed = Renamed()
    items: list[Renamed] = []


def test_an_old_name_is_an_error_naming_the_new_one_with_file_and_line(tmp_path):
    path = _write(tmp_path, """\
        name: x
        optim:
          learning_rate: 0.1
          lr: 0.2
        items:
          - {}
          - betas: [0.9, 0.95]
            beta: 0.1
        """)
    with pytest.raises(ConfigError) as e:
        load_config(path, HoldsRenamed)
    assert sorted(e.value.problems) == [
        f"{path}:4: optim.lr: renamed to optim.learning_rate",
        f"{path}:7: items.1.betas: renamed to items.1.adam_beta1 and items.1.adam_beta2",
        f"{path}:8: items.1.beta: renamed to items.1.kl.coef",
    ]
    with pytest.raises(ValueError, match="renamed to learning_rate"):   # Python callers get it too
        Renamed(lr=1.0)


def test_an_old_name_in_an_override_names_the_override(tmp_path):
    path = _write(tmp_path, "name: x\noptim: {learning_rate: 0.1}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, HoldsRenamed, overrides=["optim.lr=3e-4"])
    assert e.value.problems == [f"{path} (override 'optim.lr=3e-4'): optim.lr: renamed to optim.learning_rate"]
    # a mapping the override created is attributed to it as well; errors in the file keep their line
    path = _write(tmp_path, "name: x\nitems:\n  - {name: a, weight: heavy}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, Top, overrides=["inner.deep.lrr=1"])
    assert e.value.problems == [
        f"{path} (override 'inner.deep.lrr=1'): inner.deep: Extra inputs are not permitted",
        f"{path}:3: items.0.weight: Input should be a valid number, unable to parse string as a number"]


def test_yaml_anchors_become_independent_copies_with_their_lines(tmp_path):
    path = _write(tmp_path, """\
        shared: &s
          model: a
          nested: {k: [1, 2]}
        one: *s
        two: {<<: *s, extra: 1}
        """)
    data = load_yaml(path)
    apply_overrides(data, ["one.model=b", "one.nested.k.0=9"])
    assert data["shared"] == {"model": "a", "nested": {"k": [1, 2]}}
    assert data["one"] == {"model": "b", "nested": {"k": [9, 2]}}
    assert data["two"] == {"model": "a", "nested": {"k": [1, 2]}, "extra": 1}
    # the copies keep the anchor's line numbers (errors point at where the value is written)
    from medalign.config import line_of, override_of

    assert line_of(data, ("two", "nested", "k", 1)) == 3
    assert override_of(data, ("one", "model")) == "one.model=b" and override_of(data, ("two", "model")) is None


def test_partial_block_keeps_the_defaults_its_field_declares(tmp_path):
    """``optim: {learning_rate: ...}`` keeps the stage's own optim defaults (ChiMed's beta2 0.95),
    nested blocks too; values the YAML gives win; the class default applies only where neither
    the field's default nor the YAML says anything."""
    from pydantic import Field

    from medalign.config import StrictModel, load_config

    class Inner(StrictModel):
        depth: int = 1
        width: int = 2

    class Optim(StrictModel):
        learning_rate: float = 1e-3
        adam_beta2: float = 0.999
        inner: Inner = Field(default_factory=Inner)

    class Stage(StrictModel):
        optim: Optim = Field(default_factory=lambda: Optim(adam_beta2=0.95, inner=Inner(depth=7)))

    path = tmp_path / "stage.yaml"
    path.write_text("optim:\n  learning_rate: 0.5\n  inner: {width: 9}\n")
    cfg = load_config(path, Stage)
    assert (cfg.optim.learning_rate, cfg.optim.adam_beta2) == (0.5, 0.95)
    assert (cfg.optim.inner.depth, cfg.optim.inner.width) == (7, 9)
    assert Stage().optim.adam_beta2 == 0.95
    assert Stage(optim={"adam_beta2": 0.9}).optim.adam_beta2 == 0.9
    path.write_text("optim:\n  learning_rate: 0.5\n  adam_beta2: oops\n")
    with pytest.raises(ConfigError, match=r"stage.yaml:3: optim.adam_beta2"):
        load_config(path, Stage)
