"""The one config system: strict pydantic models loaded from YAML with line-accurate errors.

Every YAML in medalign (data recipe, job, judge config) is parsed here:

    cfg = load_config("jobs/quickstart.yaml", JobConfig, overrides=["stages.sft.epochs=2"])

* Models derive from :class:`StrictModel` (``extra="forbid"``), so a typo is an error.
* A validation error becomes :class:`ConfigError` whose message names the file, the line and
  the dotted field path of every problem, e.g.
  ``jobs/quickstart.yaml:14: stages.sft.lerning_rate: Extra inputs are not permitted``.
* ``key.sub=value`` overrides are applied to the parsed mapping before validation; the value is
  parsed as a YAML scalar (``3``, ``1e-5``, ``true``, ``null``, ``[1, 2]``). A problem in a value
  an override set names the override instead of a line.
* YAML anchors and aliases (``x-judge: &judge`` ... ``judge: *judge``) become independent copies
  when a file is parsed, so an override of one stage never reaches another through an alias.
* A field that was renamed is listed in its model's ``renamed`` table; the old name is an error
  naming the new one (``stages.ppo.config.optim.lr: renamed to optim.learning_rate``).
* Validators must do no I/O; files named in a config are checked by the code that uses them.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = [
    "StrictModel",
    "ConfigError",
    "load_yaml",
    "load_mapping",
    "line_of",
    "override_of",
    "load_config",
    "validate_mapping",
    "apply_overrides",
    "parse_override",
    "canonical_json",
    "config_hash",
]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, assignment is validated.

    ``renamed`` maps a field's old name to its new one, a dotted path relative to this model
    (``{"lr": "learning_rate", "beta": "kl.coef"}``) or a tuple of them when one field became
    several. An old name is then a validation error at the old key that names the new one, in
    YAML, in overrides and in Python constructors alike.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())
    renamed: ClassVar[dict[str, str | tuple[str, ...]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _reject_renamed_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if not cls.renamed or not isinstance(data, dict) or not any(key in cls.renamed for key in data):
            return data
        if (info.context or {}).get(_COLLECT_RENAMED):
            # validate_mapping: keep validating so every problem is reported at once; the old key
            # fails as an extra input whose value says its new name (translated there)
            return {key: _OldName(cls.renamed[key]) if key in cls.renamed else value for key, value in data.items()}
        raise ValidationError.from_exception_data(cls.__name__, [
            InitErrorDetails(type=PydanticCustomError("renamed_field", "renamed to {new}",
                                                      {"new": _names(cls.renamed[key])}),
                             loc=(key,), input=data[key])
            for key in data if key in cls.renamed])


    @model_validator(mode="before")
    @classmethod
    def _keep_block_defaults(cls, data: Any) -> Any:
        """A partial block keeps the defaults its field declares: with
        ``optim: OptimSpec = Field(default_factory=lambda: OptimSpec(adam_beta2=0.95))`` a YAML
        ``optim: {learning_rate: 1e-5}`` gives adam_beta2 0.95, not the class default 0.999."""
        if not isinstance(data, dict):
            return data
        merged = None
        for name, field in cls.model_fields.items():
            value = data.get(name)
            if not isinstance(value, dict) or field.default_factory is None:
                continue
            default = field.default_factory()
            if not isinstance(default, BaseModel):
                continue
            stated = default.model_dump(exclude_unset=True)
            if stated:
                merged = dict(data) if merged is None else merged
                merged[name] = _under(stated, value)
        return data if merged is None else merged


def _under(defaults: dict, given: dict) -> dict:
    """``given`` with ``defaults`` filled in beneath it, nested blocks merged the same way. The
    result keeps ``given``'s type (and so its YAML line numbers)."""
    out = copy.copy(given)
    for key, value in defaults.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = _under(value, out[key])
    return out


_COLLECT_RENAMED = "medalign_collect_renamed"   # validation context key set by validate_mapping


class _OldName:
    """Stands in for the value of an old field name during :func:`validate_mapping`."""

    def __init__(self, new: str | tuple[str, ...]):
        self.names = _as_tuple(new)

    def __repr__(self) -> str:
        return f"renamed to {_names(self.names)}"


def _as_tuple(new: str | tuple[str, ...]) -> tuple[str, ...]:
    return (new,) if isinstance(new, str) else tuple(new)


def _names(new: str | tuple[str, ...], parent: str = "") -> str:
    """``"a"`` or ``("a", "b")`` as ``"p.a"`` / ``"p.a and p.b"`` under the dotted ``parent``."""
    return " and ".join(f"{parent}.{n}" if parent else n for n in _as_tuple(new))


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
    """A parsed mapping: ``lines[key]`` is the line of each key, ``line`` the mapping's own line,
    ``origins[key]`` the override that set a key (absent for keys written in the file)."""

    lines: dict
    line: int
    origins: dict


class _LinedList(list):
    """A parsed sequence: ``lines[i]`` is the line of item i; ``origins`` as for _LinedDict."""

    lines: list
    line: int
    origins: dict


class _RecursiveAlias(ValueError):
    """An alias inside the node it refers to (``a: &a [*a]``): no config is infinite."""

    def __init__(self, line: int | None):
        super().__init__(line)
        self.line = line


def _unshared(value: Any, seen: tuple[int, ...] = ()) -> Any:
    """A copy in which no mapping or list is reached twice, line numbers kept.

    PyYAML returns ONE object for an anchor and all its aliases, so an override of
    ``stages.judge.config.judges.0.model`` would also change every other stage holding ``*judge``.
    (``copy.deepcopy`` would keep them shared: its memo copies a shared object once.)
    """
    if not isinstance(value, (dict, list)):
        return value
    if id(value) in seen:
        raise _RecursiveAlias(getattr(value, "line", None))
    seen = seen + (id(value),)
    if isinstance(value, dict):
        copy = _LinedDict((k, _unshared(v, seen)) for k, v in value.items())
        copy.lines = dict(getattr(value, "lines", {}))
    else:
        copy = _LinedList(_unshared(v, seen) for v in value)
        copy.lines = list(getattr(value, "lines", [None] * len(value)))
    copy.line = getattr(value, "line", None)
    copy.origins = dict(getattr(value, "origins", {}))
    return copy


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
    try:
        return {} if data is None else _unshared(data)
    except _RecursiveAlias as e:
        raise ConfigError([f"{path}:{e.line}: a YAML alias refers to a node that contains it"]) from None


def line_of(data: Any, loc: tuple) -> int | None:
    """The line of the deepest existing node on the path ``loc`` in data parsed by load_yaml."""
    return _locate(data, loc)[0]


def override_of(data: Any, loc: tuple) -> str | None:
    """The ``key.sub=value`` override that set a node on the path ``loc`` (None: the file did)."""
    return _locate(data, loc)[1]


def _locate(data: Any, loc: tuple) -> tuple[int | None, str | None]:
    """(line, override) of the deepest existing node on the path ``loc``."""
    line, origin = getattr(data, "line", None), None
    node = data
    for part in loc:
        if isinstance(node, _LinedDict) and part in node:
            line = node.lines.get(part, line)
        elif isinstance(node, _LinedList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lines[part] if part < len(node.lines) else line
        else:
            break
        origin = getattr(node, "origins", {}).get(part, origin)
        node = node[part]
    return line, origin


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
                node[part].lines, node[part].line, node[part].origins = {}, getattr(node, "line", None), {}
                _record_origin(node, part, text)
            node = node[part]
            if not isinstance(node, (dict, list)):
                raise ConfigError([f"override {text!r}: {'.'.join(parts[: i + 1])} is not a mapping"])
        last = parts[-1]
        if isinstance(node, list):
            last = _list_index(node, last, text)
        node[last] = value
        _record_origin(node, last, text)
    return data


def _record_origin(node: Any, key: Any, text: str) -> None:
    """Remember that ``text`` set ``node[key]`` (errors about it then name the override)."""
    if isinstance(node, (_LinedDict, _LinedList)):
        if not hasattr(node, "origins"):
            node.origins = {}
        node.origins[key] = text


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
        return model.model_validate(data, context={_COLLECT_RENAMED: True})
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            # pydantic puts the union member / tag into loc; keep only real keys for the line
            line, override = _locate(data, loc)
            where = f"{source} (override {override!r})" if override else f"{source}:{line}" if line else str(source)
            path = ".".join([prefix] * bool(prefix) + [str(p) for p in loc]) or "(top level)"
            message = err["msg"]
            if isinstance(err.get("input"), _OldName):   # the new name, as a path from the same root as the old
                message = "renamed to " + _names(err["input"].names, ".".join(str(p) for p in loc[:-1]))
            problems.append(f"{where}: {path}: {message}")
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
