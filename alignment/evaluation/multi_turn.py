"""The multi-turn section of an evaluation: every model plays the cases that carry a case card
with the simulated patient (patient.py), scored by ground truth (conversation_scores.py) and
by HuatuoGPT's referee on whole conversations.

    section = multi_turn_section(sets, checkpoints, digests, cfg, out_dir, ctx)

Per model, its doctor is the checkpoint's generation through the cached generation layer
(:func:`checkpoint_doctor`: one generate call per turn for every conversation still running;
the first turn answers the case's own messages, so it is the single-turn response already
cached), and its conversations go to ``out_dir/multi_turn/<model>/`` (``conversations.jsonl``,
``patient_transcripts.jsonl``, ``patient_calls.json``). Everything is cached by content: a
second run makes no generation and no patient call, and adding a model plays only its own
conversations.

Section (report.json ``multi_turn``): ``cases`` (the first ``max_cases`` carded cases of each
set), per model the ground-truth metrics pooled (``all``) and per set, the patient calls and
the doctor's generations; ``paired`` differences between models (the referee's pairs); and the
``referee``: for every pair, both models' whole conversations with the same patient shown to
the referee (``multi_turn.referee_template`` on ``referee.judge``'s endpoint, both orders, into
``out_dir/multi_turn/referee/``), summarised like the single-turn referee (referee.py) per
department; a case is judged only when both conversations ended on their own (the others are
counted in ``excluded`` as ``conversation:<status>``).
"""

from __future__ import annotations

import json
from pathlib import Path

from alignment.evaluation import conversation_scores as scores
from alignment.evaluation import referee
from alignment.evaluation.cases import Case, EvalSet
from alignment.evaluation.generations import cached_chat_generations
from alignment.evaluation.patient import ENDED, Conversation, Doctor, run_conversations

CACHE = ("cache", "generations")          # shared with the single-turn generations (run.py)


def carded_cases(sets: list[EvalSet], max_cases: int | None) -> list[Case]:
    """The first ``max_cases`` cases with a case card of each set (all when None), in set order."""
    out = []
    for s in sets:
        out += [c for c in s.cases if c.case_card is not None][:max_cases]
    return out


def checkpoint_doctor(checkpoint: str, label: str, cfg, digest: str, out: Path, ctx, stats: dict) -> Doctor:
    """A doctor for :func:`run_conversations`: the checkpoint's cached generation (``cfg``: the
    run config's sampling, seed, dtype), its counts added to ``stats``."""
    def doctor(batch: list[list[dict]]) -> list[str]:
        texts, st = cached_chat_generations(checkpoint, label, batch, cfg.sampling, cfg.seed, cfg.dtype,
                                            out.joinpath(*CACHE), ctx, digest)
        for k in ("generated", "cached", "wall_s"):
            stats[k] = round(stats.get(k, 0) + st[k], 3)
        stats["turn_calls"] = stats.get("turn_calls", 0) + 1
        return texts
    return doctor


def render_conversation(conv: Conversation, speakers: dict[str, str]) -> str:
    """The turns a model played after the case's opening, as ``Doctor: ...`` / ``Patient: ...``."""
    return "\n\n".join(f"{speakers.get(t['role'], t['role'])}: {t['content']}" for t in conv.turns)


def _speakers(template_ref: str, language: str | None) -> dict[str, str]:
    from judges.templates import load_template

    variants = load_template(template_ref).variants
    return (variants.get(language or "en") or next(iter(variants.values()))).speakers


def _set_rows(rows: list[dict], name: str) -> list[dict]:
    return [r for r in rows if r["eval_set"] == name]


def referee_on_conversations(cases: list[Case], convs: dict[str, list[Conversation]], pairs: list[tuple[str, str]],
                             cfg, out: Path, ctx) -> dict:
    """The referee's table per pair of models on whole conversations (module doc)."""
    judge = cfg.referee.judge.model_copy(update={"template": cfg.multi_turn.referee_template})
    tables, runs = {}, {}
    for a, b in pairs:
        both = [i for i, _ in enumerate(cases) if convs[a][i].status in ENDED and convs[b][i].status in ENDED]
        skipped: dict[str, int] = {}
        for i in set(range(len(cases))) - set(both):
            bad = next(c.status for c in (convs[a][i], convs[b][i]) if c.status not in ENDED)
            skipped[f"conversation:{bad}"] = skipped.get(f"conversation:{bad}", 0) + 1
        subset = [cases[i] for i in both]
        texts = {m: [render_conversation(convs[m][i], _speakers(judge.template, cases[i].language)) for i in both]
                 for m in (a, b)}
        ctx.logger.info("eval: multi-turn referee %s vs %s on %d conversations (both orders)", a, b, len(subset))
        results, stats = referee.run_referee(subset, texts, [(a, b)], judge, out / "multi_turn" / "referee", ctx.progress)
        table = referee.summarise_pair(subset, results[(a, b)], cfg.referee.tie_tolerance, cfg.n_bootstrap, cfg.seed,
                                       cfg.referee.include_flagged)
        table["excluded"] = {**table["excluded"], **skipped}
        tables[f"{a} vs {b}"] = table
        runs[f"{a} vs {b}"] = {k: stats.to_dict()[k] for k in ("planned", "already_done", "cache_hits",
                                                               "api_calls", "not_run", "statuses", "wall_s")}
    return {"enabled": True, "template": judge.template, "judge": judge.name, "model": judge.model,
            "endpoint": judge.endpoint_identity(), "pairs": tables, "runs": runs,
            "transcripts": str(out / "multi_turn" / "referee" / "transcripts.jsonl")}


def multi_turn_section(sets: list[EvalSet], checkpoints: dict[str, str], digests: dict[str, str], cfg,
                       out: Path, ctx) -> dict:
    """The section of report.json (module doc); ``cfg``: the run's EvalRunConfig."""
    mt = cfg.multi_turn
    if not mt.enabled:
        return {"enabled": False}
    cases = carded_cases(sets, mt.max_cases)
    if not cases:
        return {"enabled": True, "note": "no case carries a case card"}
    set_names = list(dict.fromkeys(c.eval_set for c in cases))
    convs, rows, models = {}, {}, {}
    for name, ref in checkpoints.items():
        ctx.logger.info("eval: %s plays %d conversations with the simulated patient (max %d turns)",
                        name, len(cases), mt.max_turns)
        store, gen = out / "multi_turn" / name, {}
        doctor = checkpoint_doctor(ref, name, cfg, digests[name], out, ctx, gen)
        convs[name] = run_conversations(cases, doctor, mt.patient, max_turns=mt.max_turns, store_dir=store,
                                        seed=cfg.seed, progress=ctx.progress)
        rows[name] = scores.conversation_scores(convs[name], cases)
        models[name] = {"all": scores.summarise(rows[name], cfg.n_bootstrap, cfg.seed),
                        "sets": {s: scores.summarise(_set_rows(rows[name], s), cfg.n_bootstrap, cfg.seed)
                                 for s in set_names},
                        "patient_calls": json.loads((store / "patient_calls.json").read_text(encoding="utf-8")),
                        "doctor_generation": gen, "conversations": str(store / "conversations.jsonl")}
    names = list(checkpoints)
    pairs = referee.model_pairs(names, cfg.referee.pairs, cfg.referee.baseline) if len(names) > 1 else []
    paired = {f"{a} vs {b}": scores.paired(rows[a], rows[b], cfg.n_bootstrap, cfg.seed) for a, b in pairs}
    if not pairs or not mt.referee or not cfg.referee.enabled:
        why = ("one model: nothing to compare" if not pairs else
               "multi_turn.referee is false" if not mt.referee else "referee.enabled is false")
        ref_section = {"enabled": False, "reason": why}
    else:
        ref_section = referee_on_conversations(cases, convs, pairs, cfg, out, ctx)
    return {"enabled": True, "max_turns": mt.max_turns, "patient": {"model": mt.patient.model,
            "endpoint": mt.patient.endpoint_identity()}, "cases": len(cases), "sets": set_names,
            "models": models, "paired": paired, "referee": ref_section}
