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
