"""The one config system: strict pydantic models loaded from YAML with line-accurate errors.

Every YAML in medalign (data recipe, job, judge config) is parsed here:

    cfg = load_config("jobs/quickstart.yaml", JobConfig, overrides=["stages.sft.epochs=2"])

* Models derive from :class:`StrictModel` (``extra="forbid"``), so a typo is an error.
* A validation error becomes :class:`ConfigError` whose message names the file, the line and
  the dotted field path of every problem, e.g.
  ``jobs/quickstart.yaml:14: stages.sft.lerning_rate: Extra inputs are not permitted``.
* ``key.sub=value`` overrides are applied to the parsed mapping before validation; the value is
  parsed as a YAML scalar (``3``, ``1e-5``, ``true``, ``null``, ``[1, 2]``).
* Validators must do no I/O; files named in a config are checked by the code that uses them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "StrictModel",
    "ConfigError",
    "load_yaml",
    "load_mapping",
    "line_of",
    "load_config",
    "validate_mapping",
    "apply_overrides",
    "parse_override",
    "canonical_json",
    "config_hash",
]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, assignment is validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class ConfigError(ValueError):
    """A config could not be loaded; ``problems`` holds one ``file:line: path: message`` each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid config:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------------------------
# YAML with line numbers
# --------------------------------------------------------------------------------------------

class _LineLoader(yaml.SafeLoader):
    """SafeLoader that also records the line of every mapping key and sequence item."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = loader.construct_mapping(node, deep=True)
    lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    mapping_with_lines = _LinedDict(mapping)
    mapping_with_lines.lines = lines
    mapping_with_lines.line = node.start_mark.line + 1
    return mapping_with_lines


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> list:
    items = _LinedList(loader.construct_sequence(node, deep=True))
    items.lines = [child.start_mark.line + 1 for child in node.value]
    items.line = node.start_mark.line + 1
    return items


class _LinedDict(dict):
    lines: dict
    line: int


class _LinedList(list):
    lines: list
    line: int


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file, keeping line numbers on mappings and lists (see :func:`line_of`).

    Raises ConfigError naming the file and line on a YAML syntax error or a missing file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([f"{path}: not UTF-8 text ({e.reason} at byte {e.start})"]) from None
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError([f"{where}: YAML syntax error: {getattr(e, 'problem', e)}"]) from None
    return {} if data is None else data


def line_of(data: Any, loc: tuple) -> int | None:
    """The line of the deepest existing node on the path ``loc`` in data parsed by load_yaml."""
    line = getattr(data, "line", None)
    node = data
    for part in loc:
        if isinstance(node, _LinedDict) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, _LinedList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lines[part]
            node = node[part]
        else:
            break
    return line


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------

def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b.c=value"`` into (["a", "b", "c"], parsed value). The value is YAML."""
    if "=" not in text:
        raise ConfigError([f"override {text!r}: expected key.sub=value"])
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise ConfigError([f"override {text!r}: empty key"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError([f"override {text!r}: value is not valid YAML ({getattr(e, 'problem', None) or e}); "
                           f"quote it or fix the brackets"]) from None
    return parts, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides in place (creating mappings as needed) and return data.

    A numeric part indexes into a list (``stages.judge.judges.0.model=gpt-4o``).
    """
    for text in overrides or []:
        parts, value = parse_override(text)
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                node = node[_list_index(node, part, text)]
                continue
            if part not in node or node[part] is None:
                node[part] = _LinedDict()
                node[part].lines, node[part].line = {}, getattr(node, "line", None)
            node = node[part]
            if not isinstance(node, (dict, list)):
                raise ConfigError([f"override {text!r}: {'.'.join(parts[: i + 1])} is not a mapping"])
        last = parts[-1]
        if isinstance(node, list):
            node[_list_index(node, last, text)] = value
        else:
            node[last] = value
    return data


def _list_index(node: list, part: str, text: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError([f"override {text!r}: {part!r} is not an index of a list of {len(node)}"])
    return int(part)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def validate_mapping(data: Any, model: type[M], source: str | Path = "<config>",
                     prefix: str = "") -> M:
    """Validate parsed YAML against ``model``; errors name source, line and field path.

    ``prefix`` is prepended to field paths when ``data`` is a sub-tree of a larger file (for
    example ``stages.sft.config`` for a stage's config inside a job YAML).
    """
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            # pydantic puts the union member / tag into loc; keep only real keys for the line
            line = line_of(data, loc)
            where = f"{source}:{line}" if line else str(source)
            path = ".".join([prefix] * bool(prefix) + [str(p) for p in loc]) or "(top level)"
            problems.append(f"{where}: {path}: {err['msg']}")
        raise ConfigError(problems) from None


def load_mapping(path: str | Path, overrides: list[str] | None = None) -> dict:
    """Load ``path`` as a YAML mapping (with line numbers) and apply ``key.sub=value`` overrides."""
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: expected a mapping at the top level, got {type(data).__name__}"])
    return apply_overrides(data, overrides or [])


def load_config(path: str | Path, model: type[M], overrides: list[str] | None = None) -> M:
    """Load ``path`` as YAML, apply overrides, validate against ``model``."""
    return validate_mapping(load_mapping(path, overrides), model, source=path)


# --------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------

def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) of a model, mapping or value."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def config_hash(obj: Any, length: int = 16) -> str:
    """sha256 of :func:`canonical_json`, truncated to ``length`` hex digits."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:length]
