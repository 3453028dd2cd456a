"""What the local rubric model says: the completion text and its token log-probabilities.

Ratings come from :mod:`judges.server.rubric`; optional position bias and seeded noise (for
audit tests) are added here. The reply is a short explanation and then the template's exact final
line. Tokens are a simple split (numbers, words, single other characters), used for usage counts,
``max_tokens`` truncation and logprobs: the score tokens get a distribution over the valid scores
centred on the unrounded rating, so a soft score recovers it.
"""

from __future__ import annotations

import hashlib
import math
import random
import re

from judges.config import LocalServerOptions
from judges.server.prompt_parse import JudgePrompt
from judges.server.rubric import Rating, rate

# GPT-like pieces: a number, a word or one other character, each with the whitespace before it
_TOKEN = re.compile(r"\s*(?:\d+|[A-Za-z]+|\S)|\s+")
CRITERIA_LINE = ("Correctness", "Richness", "Consistency", "Diagnosis", "Overall")


# what count_tokens collapses: each maximal run of digits or of ASCII letters is one token
_RUN = re.compile(r"\d+|[A-Za-z]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def count_tokens(text: str) -> int:
    """``len(tokens(text))`` without building the list (the prompt's usage count, on every call).

    A token is a digit run, an ASCII-letter run or one other non-space character, each with the
    whitespace before it; whitespace at the very end is one more token. So: collapse each run to
    one character, count the non-space characters, add one for trailing whitespace."""
    collapsed = _RUN.sub("x", text)
    return len("".join(collapsed.split())) + (1 if collapsed[-1:].isspace() else 0)


def _noise(options: LocalServerOptions, prompt: JudgePrompt, slot: str) -> float:
    if options.noise_std <= 0:
        return 0.0
    digest = hashlib.sha256(f"{options.noise_seed}|{slot}|{prompt.question}|{prompt.responses[slot]}"
                            .encode("utf-8")).digest()
    return random.Random(digest).gauss(0.0, options.noise_std)


def ratings(prompt: JudgePrompt, options: LocalServerOptions) -> dict[str, tuple[Rating, float]]:
    """Per slot: the rubric rating and the final score (bias for slot A, noise, clipped 1-10)."""
    out = {}
    for slot, text in prompt.responses.items():
        r = rate(text, prompt.reference, prompt.language)
        score = r.total + _noise(options, prompt, slot)
        if slot == "A" and prompt.kind != "single_rating":
            score += options.position_bias
        out[slot] = (r, min(10.0, max(1.0, score)))
    return out


def _explain(slot: str, r: Rating) -> str:
    return (f"Response {slot}: accuracy {r.accuracy:.2f}, doctor-likeness {r.doctor:.2f}, "
            f"helpfulness {r.helpfulness:.2f}, conciseness {r.conciseness:.2f}, "
            f"logical consistency {r.coherence.describe()}.")


def compose(prompt: JudgePrompt, options: LocalServerOptions) -> tuple[str, dict[int, float]]:
    """The completion text, and {char offset of a score token: unrounded value} for logprobs."""
    rated = ratings(prompt, options)
    lines = [_explain(s, r) for s, (r, _) in rated.items()]
    if prompt.kind == "pairwise_rating":
        a, b = rated["A"][1], rated["B"][1]
        head = "\n".join(lines) + "\n"
        part_a = "Rating A: "
        final = f"{part_a}{round(a)}; Rating B: {round(b)}"
        soft = {len(head) + len(part_a): a,
                len(head) + final.index("Rating B: ") + len("Rating B: "): b}
        return head + final, soft
    if prompt.kind == "pairwise_verdict":
        diff = rated["A"][1] - rated["B"][1]
        letter = "A" if diff > 0.5 else ("B" if diff < -0.5 else "C")
        head = "\n".join(lines) + "\n"
        return head + f"Verdict: [[{letter}]]", {len(head) + len("Verdict: [["): diff}
    r, overall = rated["A"]
    crit = {"Correctness": 1 + 9 * r.accuracy, "Richness": 1 + 9 * r.helpfulness,
            "Consistency": 1 + 9 * r.coherence.score,
            "Diagnosis": 1 + 9 * (0.6 * r.accuracy + 0.4 * r.doctor), "Overall": overall}
    head = lines[0] + "\n"
    final = "; ".join(f"{k}: {round(v)}" for k, v in crit.items())
    return head + final, {len(head) + final.rindex(" ") + 1: overall}


def logprobs_content(text: str, soft: dict[int, float], kind: str, top_n: int) -> list[dict]:
    """OpenAI-style ``logprobs.content`` for ``text``; score tokens carry real alternatives
    (with the same leading whitespace as the token, as a BPE vocabulary would have them)."""
    out, pos = [], 0
    for tok in tokens(text):
        lead = tok[: len(tok) - len(tok.lstrip())]
        at = pos + len(lead)
        if at in soft:
            alts = _verdict_alts(soft[at]) if kind == "pairwise_verdict" else _score_alts(soft[at])
            alts = sorted(((lead + t, p) for t, p in alts.items()), key=lambda kv: -kv[1])
            chosen = dict(alts).get(tok, alts[0][1])
            out.append({"token": tok, "logprob": math.log(chosen), "bytes": None,
                        "top_logprobs": [{"token": t, "logprob": math.log(p), "bytes": None}
                                         for t, p in alts[:max(top_n, 1)]]})
        else:
            out.append({"token": tok, "logprob": 0.0, "bytes": None,
                        "top_logprobs": [{"token": tok, "logprob": 0.0, "bytes": None}][:top_n]})
        pos += len(tok)
    return out


def _score_alts(value: float, width: float = 0.6) -> dict[str, float]:
    """A discretised gaussian over 1..10 centred on ``value`` (its mean is close to value)."""
    weights = {k: math.exp(-((k - value) ** 2) / (2 * width ** 2)) for k in range(1, 11)}
    z = sum(weights.values())
    return {str(k): w / z for k, w in weights.items()}


def _verdict_alts(diff: float) -> dict[str, float]:
    p_a = 1.0 / (1.0 + math.exp(-2.0 * diff))
    p_tie = math.exp(-diff * diff / 0.18)     # the mode is C exactly when |diff| < ~0.5
    return {"A": p_a * (1 - p_tie), "B": (1 - p_a) * (1 - p_tie), "C": p_tie}
