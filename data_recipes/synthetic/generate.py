"""Write the synthetic demo corpus in the real public formats.

    from data_recipes.synthetic.generate import write_corpus
    summary = write_corpus("corpus/", n_consultations=600, seed=0, languages=("zh",))
    summary["files"][0]   # {"file": "meddialog_raw_zh.txt", "format": "meddialog_raw", "records": 600, ...}

One file per format and language (see ``FILES``): real-doctor consultations (MedDialog raw text),
real-doctor QA (HuatuoGPT sft jsonl and CMD finetune), distilled instructions and conversations
(HuatuoGPT sft jsonl), CMD reward tuples, 4-way ranked tuples (our layout, see
``corpus_records``), CMD pretrain documents, Safety-Prompts, evaluation prompts
(KUAKE-QIC-like and Med-dialog-cases-like), the eval sets with ground truth
(``eval_single_turn``, ``eval_multi_turn``: ``eval_sets.py``, their own random stream), and on
request (``sizes={"realmeddial": N}``) a RealMedDial-shaped file whose dialogues carry department,
disease, symptoms and the doctor the world assigns. Every file is read back by the reader named
in its ``format`` with nothing quarantined.

Seeded and deterministic: each file has its own random stream derived from (seed, language,
file), so the same arguments give the same bytes, and changing one file's size does not change
the others. ``corpus_summary.json`` (also returned) lists files, formats, origins, record counts
and SHA-256 digests.

Optional files are written only when ``sizes`` asks for them (so the default corpus is the same
bytes with or without them): ``meddialog_outbreak`` (``OPTIONAL_FILES``), MedDialog raw text
about the new-outbreak family of ``data/outbreak.yaml``, the small target set of MedDialog's
transfer experiment (CovidDialog had 1,088 consultations).

Also re-exported here for the judges and benchmarks: ``compose_answer`` (the four answer styles)
and ``iter_meddialog_raw_blocks`` (stream N consultations without holding them).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from data_recipes.synthetic import corpus_records as build
from data_recipes.synthetic.answers import STYLES, compose_answer, compose_patient_message, draw_case
from data_recipes.synthetic.consultations import iter_consultations, iter_meddialog_raw_blocks
from data_recipes.synthetic.outbreak import CORPUS_KEY as OUTBREAK_KEY
from data_recipes.synthetic.outbreak import iter_outbreak_blocks
from data_recipes.synthetic.realmeddial import build_realmeddial
from data_recipes.synthetic.eval_sets import build_eval_multi_turn, build_eval_single_turn
from data_recipes.synthetic.world import CONDITIONS

__all__ = ["FILES", "OPTIONAL_FILES", "write_corpus", "compose_answer", "compose_patient_message", "draw_case", "STYLES",
           "iter_meddialog_raw_blocks", "iter_consultations", "default_sizes"]

LANGUAGES = ("zh", "en")
SUMMARY_FILE = "corpus_summary.json"


@dataclass(frozen=True)
class CorpusFile:
    key: str                     # size key, e.g. "real_qa"
    filename: str                # with a {lang} placeholder; .txt raw text, .jsonl, .json
    format: str                  # the reader that reads it (data_recipes.readers.FORMATS)
    origin: str                  # real_doctor | distilled | preference | pretrain | safety | eval
    builder: Callable | None     # (n, rng, lang) -> records; raw text: (n, seed, lang) -> blocks, None: the world's
    size: Callable[[int], int]   # default record count from n_consultations
    stream: str = "medalign-synth"   # random stream prefix: eval sets draw from their own

    @property
    def layout(self) -> str:
        return {"txt": "raw", "jsonl": "jsonl", "json": "json"}[self.filename.rsplit(".", 1)[1]]


def _same(n: int) -> int:
    return n


def _half(n: int) -> int:
    return n // 2


FILES: tuple[CorpusFile, ...] = (
    CorpusFile("meddialog_raw", "meddialog_raw_{lang}.txt", "meddialog_raw", "real_doctor", None, _same),
    # real-doctor QA: consultations plus the other KUAKE-QIC intents (a quarter more records, so
    # a mix asking for n rows still has them after dedup and eval-set decontamination)
    CorpusFile("real_qa", "huatuo_real_qa_{lang}.jsonl", "huatuo_sft", "real_doctor", build.build_real_qa,
               lambda n: n + n // 4),
    CorpusFile("distilled_instructions", "huatuo_distilled_instructions_{lang}.jsonl", "huatuo_sft", "distilled",
               build.build_distilled_instructions, _same),
    CorpusFile("distilled_conversations", "huatuo_distilled_conversations_{lang}.jsonl", "huatuo_sft", "distilled",
               build.build_distilled_conversations, _half),
    CorpusFile("cmd_finetune", "cmd_finetune_{lang}.jsonl", "cmd_finetune", "real_doctor",
               build.build_cmd_finetune, _half),
    CorpusFile("cmd_reward", "cmd_reward_{lang}.jsonl", "cmd_reward", "preference", build.build_cmd_reward, _half),
    CorpusFile("ranked", "ranked_{lang}.jsonl", "ranked_jsonl", "preference", build.build_ranked, _half),
    CorpusFile("cmd_pretrain", "cmd_pretrain_{lang}.jsonl", "cmd_pretrain", "pretrain", build.build_cmd_pretrain,
               lambda n: max(len(CONDITIONS), n // 4)),
    CorpusFile("safety_prompts", "safety_prompts_{lang}.json", "safety_prompts", "safety", build.build_safety_prompts,
               lambda n: max(30, n // 10)),
    CorpusFile("kuake_qic", "kuake_qic_{lang}.json", "kuake_qic", "eval", build.build_kuake_qic, lambda n: 100),
    CorpusFile("meddialog_cases", "meddialog_cases_{lang}.json", "huatuo_meddialog_cases", "eval",
               build.build_meddialog_cases, lambda n: 100),
    CorpusFile("eval_single_turn", "eval_single_turn_{lang}.jsonl", "medalign_eval_cases", "eval",
               build_eval_single_turn, lambda n: 100, stream="medalign-eval"),
    CorpusFile("eval_multi_turn", "eval_multi_turn_{lang}.jsonl", "medalign_eval_cases", "eval",
               build_eval_multi_turn, lambda n: 100, stream="medalign-eval"),
    # written only when asked for (sizes={"realmeddial": N}): the default corpus stays as it was
    CorpusFile("realmeddial", "realmeddial_{lang}.json", "realmeddial", "real_doctor", build_realmeddial,
               lambda n: 0),
)


# written only when write_corpus(sizes=...) gives them a count
OPTIONAL_FILES: tuple[CorpusFile, ...] = (
    CorpusFile(OUTBREAK_KEY, "meddialog_outbreak_{lang}.txt", "meddialog_raw", "real_doctor", iter_outbreak_blocks,
               lambda n: 0),
)


def default_sizes(n_consultations: int) -> dict[str, int]:
    """Record count per file key for ``n_consultations`` (the HuatuoGPT mix is roughly even)."""
    return {f.key: f.size(n_consultations) for f in FILES}


def write_corpus(
    out_dir: str | Path,
    n_consultations: int = 600,
    seed: int = 0,
    languages: Iterable[str] = LANGUAGES,
    sizes: Mapping[str, int] | None = None,
) -> dict:
    """Write every corpus file for each language into ``out_dir``; return the summary.

    ``sizes`` overrides record counts per file key (see ``default_sizes``); 0 skips a file. An
    optional file (``OPTIONAL_FILES``, e.g. ``meddialog_outbreak``) is written when it gets a count.
    """
    languages = tuple(languages)
    bad = [lang for lang in languages if lang not in LANGUAGES]
    if bad or not languages:
        raise ValueError(f"languages must be a non-empty subset of {LANGUAGES}, got {languages}")
    if n_consultations < 0:
        raise ValueError(f"n_consultations must be >= 0, got {n_consultations}")
    counts = default_sizes(n_consultations) | {f.key: 0 for f in OPTIONAL_FILES}
    unknown = sorted(set(sizes or {}) - set(counts))
    if unknown:
        raise ValueError(f"unknown corpus file keys in sizes: {unknown}; known: {sorted(counts)}")
    counts.update(sizes or {})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for lang in languages:
        for spec in FILES + OPTIONAL_FILES:
            if counts[spec.key] > 0:
                files.append(_write_file(out, spec, lang, counts[spec.key], seed))
    summary = {"generator": "medalign-synthetic-v1", "seed": seed, "n_consultations": n_consultations,
               "languages": list(languages), "files": files,
               "total_records": sum(f["records"] for f in files)}
    summary_text = json.dumps(summary, ensure_ascii=False, indent=2) + "\n"
    (out / SUMMARY_FILE).write_text(summary_text, encoding="utf-8")
    return summary


def _write_file(out: Path, spec: CorpusFile, lang: str, n: int, seed: int) -> dict:
    path = out / spec.filename.format(lang=lang)
    if spec.layout == "raw":
        chunks: Iterable[str] = (spec.builder or iter_meddialog_raw_blocks)(n, seed, lang)
    else:
        rng = random.Random(f"{spec.stream}:{seed}:{lang}:{spec.key}")
        records = spec.builder(n, rng, lang)
        if spec.layout == "jsonl":
            chunks = (json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        else:
            chunks = [json.dumps(records, ensure_ascii=False, indent=1) + "\n"]
    digest = hashlib.sha256()
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for chunk in chunks:
            f.write(chunk)
            digest.update(chunk.encode("utf-8"))
    return {"file": path.name, "format": spec.format, "origin": spec.origin, "language": lang,
            "records": n, "sha256": digest.hexdigest()}
