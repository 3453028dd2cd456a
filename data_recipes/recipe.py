"""The recipe schema: what a data team writes in ``data_recipes/recipes/*.yaml``.

    name: quickstart
    seed: 0                                   # required: sampling and splits derive from it
    variables: {corpus: ../../corpus}         # defaults for ${name} in paths (CLI: --var name=DIR)
    sources:
      - name: doctor_dialogues
        path: ${corpus}/meddialog_zh.txt      # a path or glob, relative to this file's folder
        format: meddialog_raw                 # a reader in data_recipes.readers.FORMATS
        origin: real_doctor                   # distilled | real_doctor | safety | pretrain | declared
        language: zh
        transforms: [merge_consecutive_speakers, normalize_roles, scrub_pii,
                     {name: filter_length, max_chars: 2000}]
    outputs:
      eval:                                   # eval sets: whole sources, never trained on
        - {name: kuake_qic_100, source: kuake_real}
      sft:
        total: 2000                           # fractions are of this total ...
        mix:
          - {source: doctor_dialogues, fraction: 0.5, build: per_turn_examples}
          - {source: distilled_qa, fraction: 0.5, upsample: true}
      prompts:
        mix:                                  # ... or every weight is a count (or "all")
          - {source: doctor_dialogues, count: 300, build: final_turn_prompt}
    splits: {train: 0.9, validation: 0.05, test: 0.05}

The mixing unit is an output row (an SFT example, a prompt, a pair...). An output's weights have
ONE meaning: all fractions of ``total`` (summing to 1), or all counts. Asking for more rows than
a source has after filtering and dedup is an error unless ``upsample: true`` (then rows repeat).
An eval set (``outputs.eval``) is a whole source written apart; no training output may use that
source, and every training row overlapping an eval case is removed (``eval_overlap``).
A source file with no records is an error unless the source says ``allow_empty: true``.

This module is the schema only. :func:`data_recipes.recipe_load.load_recipe` validates a file
against it AND checks what needs the file system or cross-references (files exist, formats and
sources are known, weights can be met), naming the file, line and field of every problem.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from data_recipes.transforms import TransformSpec
from medalign.config import StrictModel

BUILTIN_ORIGINS = ("distilled", "real_doctor", "safety", "pretrain")
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"


class Source(StrictModel):
    """One input: files of one format, one origin."""

    name: str = Field(pattern=NAME_PATTERN, description="unique name; used in the mix, the report and provenance")
    path: str = Field(description="file path or glob; ${var} substituted; relative paths are relative to the recipe file's folder")
    format: str = Field(description="reader name, one of data_recipes.readers.FORMATS")
    origin: str = Field(description="distilled | real_doctor | safety | pretrain, or an origin declared in the recipe's `origins`")
    language: Literal["zh", "en", "auto"] = Field("auto", description="language of every record of the source; auto: detected per record (add filter_language to enforce one)")
    transforms: list[TransformSpec] = Field(default_factory=list, description="record transforms, applied in order")
    reader_options: dict[str, str | int | float | bool] = Field(default_factory=dict, description="extra keyword arguments for the reader")
    max_quarantine_fraction: float | None = Field(None, ge=0, le=1, description="overrides the recipe's max_quarantine_fraction for this source")
    allow_empty: bool = Field(False, description="a file of this source with no records is a counted warning in build_report.json instead of an error")


class MixComponent(StrictModel):
    """How many rows of one output come from one source, built how."""

    source: str = Field(description="a source name")
    build: str | None = Field(None, description="builder turning a record into rows (default per output: sft per_turn_examples, prompts final_turn_prompt, preferences preference_pairs, ranked ranked_tuples, pretrain pretrain_text, cases routing_case)")
    fraction: float | None = Field(None, gt=0, le=1, description="share of the output's `total` (all components of an output use fractions, or all use counts)")
    count: int | Literal["all"] | None = Field(None, description="exact number of rows, or 'all' rows the source gives")
    upsample: bool = Field(False, description="allow repeating rows when the source has fewer than asked (repeats get ids with #r<k>)")


class Output(StrictModel):
    """One output dataset (sft, prompts, preferences, ranked, pretrain or cases)."""

    total: int | None = Field(None, gt=0, description="number of rows; required when the weights are fractions, forbidden with counts")
    mix: list[MixComponent] = Field(min_length=1, description="where the rows come from")
    dedup_rows: bool = Field(True, description="drop rows identical to an earlier row of this output (same prompt, or same messages for sft)")


class EvalOutput(StrictModel):
    """One eval set: every record of one source, written whole (no mixing, no splits), never trained on."""

    name: str = Field(pattern=NAME_PATTERN, description="the set's name: the file eval/<name>.parquet and the eval_set column")
    source: str = Field(description="a source name; it may feed no training output")
    max_cases: int | None = Field(None, ge=1, description="keep only the first N cases (None: all)")


class Outputs(StrictModel):
    """The outputs a recipe makes; each training output is written as {train,validation,test}.parquet,
    each eval set as eval/<name>.parquet."""

    sft: Output | None = Field(None, description="SFT conversations (OpenAI messages)")
    prompts: Output | None = Field(None, description="prompts with reference answers for sampling, RL and evaluation")
    preferences: Output | None = Field(None, description="(prompt, chosen, rejected) pairs")
    ranked: Output | None = Field(None, description="k-way ranked responses (CMD style)")
    pretrain: Output | None = Field(None, description="plain text for continued pretraining")
    cases: Output | None = Field(None, description="patient cases with their department (and doctor) for routing and doctor recommendation")
    eval: list[EvalOutput] | None = Field(None, description="eval sets (data_recipes/eval_cases.py); every training output is decontaminated against them")


class Splits(StrictModel):
    """Fractions of consultations per split; a consultation's rows all land in one split."""

    train: float = Field(0.9, ge=0, le=1, description="fraction of consultations in train")
    validation: float = Field(0.05, ge=0, le=1, description="fraction in validation")
    test: float = Field(0.05, ge=0, le=1, description="fraction in test")


class NearDedup(StrictModel):
    """MinHash near-duplicate removal (see data_recipes/transforms/dedup.py)."""

    threshold: float = Field(0.8, gt=0, le=1, description="estimated Jaccard similarity of character shingles at which a record is a near duplicate")
    num_perm: Literal[16, 32, 64, 128, 256] = Field(64, description="MinHash signature length (bins)")
    bands: int = Field(16, ge=1, description="LSH bands; num_perm must be a multiple (more bands: higher recall, more candidates)")
    shingle_chars: int = Field(5, ge=1, le=64, description="characters per shingle (after removing whitespace)")


class Dedup(StrictModel):
    """Record-level duplicate removal, in source order (earlier sources win)."""

    exact: bool = Field(True, description="drop records whose normalised text (lower-case, no whitespace) was seen before")
    near: NearDedup | None = Field(default_factory=NearDedup, description="MinHash near-duplicate removal; null turns it off")
    scope: Literal["across_sources", "within_source"] = Field("across_sources", description="compare records across all sources, or only within one")


class EvalSet(StrictModel):
    """An evaluation file that training rows must not overlap."""

    path: str = Field(description="file path or glob (same rules as a source path)")
    format: str = Field(description="reader name")


class Decontaminate(StrictModel):
    """Drop train-split rows that share a long n-gram with an evaluation set."""

    against: list[EvalSet] = Field(min_length=1, description="evaluation files")
    ngram_chars: int = Field(50, ge=8, description="window length in characters (whitespace removed)")


class EvalOverlap(StrictModel):
    """When a training row overlaps an eval set's patient message (transforms/decontaminate.EvalSetIndex)."""

    threshold: float = Field(0.8, gt=0, le=1, description="MinHash Jaccard estimate (character shingles) at which a text is a near duplicate of an eval message")
    shingle_chars: int = Field(5, ge=1, le=64, description="characters per shingle")
    num_perm: Literal[16, 32, 64, 128, 256] = Field(64, description="MinHash signature length")
    bands: int = Field(16, ge=1, description="LSH bands (must divide num_perm)")
    ngram_chars: int = Field(50, ge=8, description="a shared window of this many characters is an overlap (finds a quoted eval message)")


class Recipe(StrictModel):
    """A data recipe: sources, per-source transforms, mixes per output, splits, dedup."""

    name: str = Field(pattern=NAME_PATTERN, description="recipe name (provenance, report)")
    description: str = Field("", description="what this recipe is for")
    seed: int = Field(description="seed of sampling and splits (required: a recipe builds the same data every time)")
    variables: dict[str, str] = Field(default_factory=dict, description="defaults for ${name} in paths; --var name=value overrides")
    origins: list[str] = Field(default_factory=list, description="origins beyond distilled/real_doctor/safety/pretrain")
    sources: list[Source] = Field(min_length=1, description="inputs")
    outputs: Outputs = Field(description="datasets to write")
    splits: Splits = Field(default_factory=Splits, description="split fractions (by consultation id)")
    dedup: Dedup = Field(default_factory=Dedup, description="duplicate removal")
    decontaminate: Decontaminate | None = Field(None, description="decontamination of train rows against external evaluation files")
    eval_overlap: EvalOverlap = Field(default_factory=EvalOverlap, description="what counts as overlap with the recipe's own eval sets (outputs.eval)")
    max_quarantine_fraction: float = Field(0.05, ge=0, le=1, description="a source with a larger share of malformed records fails the build")
    quarantine_raw: bool = Field(False, description="keep malformed records' raw text unscrubbed in quarantine.jsonl (it may hold personal information; the report warns); default: scrubbed like the outputs")
