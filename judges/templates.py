"""Versioned judge prompt templates: YAML files with an id, a kind, and zh/en variants.

Built-in templates live in ``judges/prompts/<id>.yaml``:

* ``huatuo_pairwise`` (kind ``pairwise_rating``): HuatuoGPT's AI-feedback prompt; the judge ends
  with ``Rating A: x; Rating B: y``.
* ``single_rubric`` (kind ``single_rating``): one response, HuatuoGPT's criteria; ends with
  ``Correctness: x; Richness: x; Consistency: x; Diagnosis: x; Overall: x``.
* ``verdict_pairwise`` (kind ``pairwise_verdict``): ends with ``Verdict: [[A]]|[[B]]|[[C]]``.

Users add their own by pointing ``JudgeConfig.template`` at a YAML file of the same shape. A
template's ``hash`` (sha256 of its canonical content) enters every cache key and transcript row,
so editing a template never reuses judgments made with the old text.

Section markers are the whole lines of ``user`` written as ``[Something]``. Text inserted into
the template (history, question, reference, responses) is untrusted: anything in it that imitates
a section marker of this template or of any built-in template, in any case, spacing or bracket
style (``[Response B]``, ``[ response b ]``, ``【回答B】``, ``[End of response]``), is neutralised
(written ``［Response B］`` with full-width brackets), so a candidate response cannot open a fake
section, neither for an LLM judge nor for the local rubric server.
"""

from __future__ import annotations

import hashlib
import re
import string
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from medalign.config import StrictModel, canonical_json, load_config

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
TemplateKind = Literal["pairwise_rating", "pairwise_verdict", "single_rating"]
_MARKER_LINE = re.compile(r"^\[[^\]\n{}]+\]$", re.MULTILINE)
# a bracketed name in untrusted text, with ASCII, full-width or CJK lenticular brackets
_BRACKETED = re.compile(r"[\[［【]\s*([^\]］】\[［【\n]{1,60}?)\s*[\]］】]")
_NAME_NOISE = re.compile(r"[\s'’]+")
_CJK = re.compile(r"[\u4e00-\u9fff]")

_REQUIRED = {
    "pairwise_rating": {"question", "reference", "response_a", "response_b"},
    "pairwise_verdict": {"question", "reference", "response_a", "response_b"},
    "single_rating": {"question", "reference", "response"},
}
_ALLOWED = {"history", "question", "reference", "response_a", "response_b", "response"}


class Scale(StrictModel):
    min: float = 1.0                      # lowest valid score
    max: float = 10.0                     # highest valid score


class Variant(StrictModel):
    """The prompt in one language."""

    system: str = ""                      # system message ("" = none)
    user: str                             # user message with {placeholders}
    no_reference: str = "(none)"          # put in {reference} when there is no reference
    no_history: str = "(none)"            # put in {history} when the question opens the talk
    speakers: dict[str, str] = Field(default_factory=lambda: {
        "user": "Patient", "assistant": "Doctor", "system": "System"})  # role labels in history


class TemplateSpec(StrictModel):
    """A judge prompt template (one YAML file)."""

    id: str                               # stable name, used in transcripts
    version: int = 1                      # bump when the wording changes
    kind: TemplateKind                    # decides the parser
    scale: Scale = Field(default_factory=Scale)
    criteria: list[str] = Field(default_factory=list)  # single_rating: criteria before Overall
    variants: dict[str, Variant]          # language code -> prompt ("zh", "en")

    @model_validator(mode="after")
    def _placeholders(self) -> "TemplateSpec":
        if not self.variants:
            raise ValueError("variants: at least one language is needed")
        for lang, var in self.variants.items():
            names = {f for _, f, _, _ in string.Formatter().parse(var.user) if f is not None}
            if unknown := names - _ALLOWED:
                raise ValueError(f"variants.{lang}.user: unknown placeholders {sorted(unknown)}")
            if missing := _REQUIRED[self.kind] - names:
                raise ValueError(f"variants.{lang}.user: missing placeholders {sorted(missing)}")
        return self

    @property
    def hash(self) -> str:
        return _spec_hash(canonical_json(self))

    def markers(self) -> list[str]:
        """Every section marker line of every variant, longest first."""
        found = {m for v in self.variants.values() for m in _MARKER_LINE.findall(v.user)}
        return sorted(found, key=len, reverse=True)


@lru_cache(maxsize=64)
def _spec_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def builtin_templates() -> list[str]:
    """Ids of the templates shipped in judges/prompts/."""
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml"))


@lru_cache(maxsize=32)
def load_template(ref: str) -> TemplateSpec:
    """A built-in template by id, or a user template from a YAML path."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml"):
        return load_config(path, TemplateSpec)
    builtin = PROMPTS_DIR / f"{ref}.yaml"
    if not builtin.is_file():
        raise ValueError(f"unknown judge template {ref!r}: give a YAML path or one of "
                         f"{builtin_templates()}")
    return load_config(builtin, TemplateSpec)


def detect_language(text: str) -> str:
    """"zh" when at least a fifth of the letters are CJK characters, else "en"."""
    letters = sum(ch.isalpha() for ch in text)
    return "zh" if letters and len(_CJK.findall(text)) / letters >= 0.2 else "en"


def pick_variant(spec: TemplateSpec, language: str | None, text: str) -> tuple[str, Variant]:
    """The variant for ``language`` (detected from ``text`` when None); the first one otherwise."""
    lang = language or detect_language(text)
    if lang in spec.variants:
        return lang, spec.variants[lang]
    first = next(iter(spec.variants))
    return first, spec.variants[first]


def _marker_name(name: str) -> str:
    """A marker's name as compared: case-folded, without spaces and apostrophes."""
    return _NAME_NOISE.sub("", name).casefold()


@lru_cache(maxsize=64)
def _imitated_names(markers: tuple[str, ...]) -> frozenset[str]:
    """Names of ``markers`` and of every built-in template's markers."""
    names = {_marker_name(m[1:-1]) for m in markers}
    for ref in builtin_templates():
        names |= {_marker_name(m[1:-1]) for m in load_template(ref).markers()}
    return frozenset(names)


def neutralise(text: str, markers: list[str]) -> str:
    """Defuse section markers inside untrusted text: ``[Response B]`` -> ``［Response B］``.

    Every bracketed name whose letters match a marker of ``markers`` or of a built-in template
    (case, spaces and bracket style aside) is rewritten with full-width brackets; any other
    bracketed text is left as it is."""
    if "[" not in text and "【" not in text and "［" not in text:
        return text
    names = _imitated_names(tuple(markers))

    def defuse(m: re.Match) -> str:
        return f"［{m.group(1)}］" if _marker_name(m.group(1)) in names else m.group(0)
    return _BRACKETED.sub(defuse, text)


def render_history(history: list[dict], variant: Variant) -> str:
    """Earlier turns as ``Speaker: text`` lines (the caller neutralises markers)."""
    if not history:
        return variant.no_history
    lines = []
    for turn in history:
        label = variant.speakers.get(turn["role"], turn["role"])
        lines.append(f"{label}: {turn['content']}")
    return "\n".join(lines)


def render(spec: TemplateSpec, *, language: str | None, history: list[dict], question: str,
           reference: str | None, responses: dict[str, str]) -> tuple[str, list[dict]]:
    """Fill the template; returns (language used, chat messages).

    ``responses`` maps ``response_a``/``response_b`` (pairwise) or ``response`` (single) to text.
    """
    lang, var = pick_variant(spec, language, question)
    markers = spec.markers()
    slots = {
        "history": neutralise(render_history(history, var), markers),
        "question": neutralise(question, markers),
        "reference": neutralise(reference, markers) if reference else var.no_reference,
    }
    slots.update({k: neutralise(v, markers) for k, v in responses.items()})
    messages = [{"role": "system", "content": var.system}] if var.system else []
    messages.append({"role": "user", "content": var.user.format_map(slots)})
    return lang, messages
