"""Logical consistency of one response: the criterion that word salad fails.

HuatuoGPT's judges rated "logical consistency"; a real LLM judge reads a response that repeats
its own clauses, numbers a list 4, 1, 3, 2, leaves sentences hanging ("如果出现。") or gives
advice for a condition it never discusses as incoherent, however many advice-like phrases it
holds. This module counts such faults with cheap, deterministic detectors and turns the counts
into a score in (0, 1]:

    coherence = exp(-sum(PENALTY[kind] * count[kind]))

so a clean response scores 1, one stray artefact costs 10-40 %, and salad (dozens of faults)
scores close to 0. The rubric multiplies the other criteria by it: salad cannot score well on
helpfulness or accuracy. The detectors of form (:func:`form_faults`) read the text alone; the
detectors of content (:mod:`judges.server.topic_consistency`) use the world's lexicon.

Fault kinds, all counted per occurrence:

==================  ========================================================================
``no_content``      the response says nothing: empty, punctuation, a list number, or only a
                    greeting / pleasantry ("。", "1.", "您好。", "Hi.")
``repetition``      a clause repeated ("如有其他问题！如有其他问题！"), a unit repeated in a row
                    ("您好您好您好", "祝您身体健康祝您身体健康", "the the")
``numbering``       a list number out of order or a list starting past 1 ("4. 眼压" after prose,
                    "3. 2."), an empty list item ("1. ，避免..."), a number dangling at the end
``punctuation``     clashing punctuation ("。。", "：：", "！，"), a line starting with punctuation,
                    a lone Latin period inside Chinese text ("您好.   在"), "word ." in English
``broken_char``     a UTF-8 replacement character (a token cut in the middle of a character)
``dangling``        a sentence that stops where it must go on ("您提到。", "包括1.", "such as."),
                    an intro line ending in a colon with no list after it
``unterminated``    the text stops without final punctuation (cut off mid-sentence)
``off_topic``       advice or a warning sign that belongs to a condition the response does not
                    discuss and the standard answer does not name
``unrelated``       conditions named together that are not each other's differentials, outside
                    a hedged sentence that frames them as alternatives
``wrong_department``  a department named that belongs to none of the conditions named
==================  ========================================================================

Everything is a pure function of its arguments and cached, so the server's CPU per call stays low.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice

from judges.server.topic_consistency import topic_faults

# points of "badness" per fault; coherence = exp(-sum of penalty x count)
# (an answer that says nothing is as good as failed; one stray artefact costs 10-40 %)
PENALTY = {
    "no_content": 3.0, "repetition": 0.35, "numbering": 0.3, "punctuation": 0.2,
    "broken_char": 0.5, "dangling": 0.3, "unterminated": 0.1, "off_topic": 0.3, "unrelated": 0.3,
    "wrong_department": 0.3,
}

# what an answer that says something has, besides pleasantries: 2 CJK characters or digits
# ("是的", "40%") / one English word ("Yes.")
MIN_CONTENT = {"zh": 2, "en": 1}
_PLEASANTRIES = {
    "zh": ("您好", "你好", "医生", "大夫", "感谢您的提问", "谢谢", "祝您早日康复", "祝您身体健康"),
    "en": ("hello", "hi", "thank you", "thanks", "doctor", "get well soon", "take care"),
}
_ZH_CONTENT = re.compile(r"[\u4e00-\u9fff]|[a-z0-9]")
_EN_CONTENT = re.compile(r"[a-z0-9]+")
REPEAT_ALLOWANCE = 400                     # characters of text per repeated clause tolerated
# Patterns start with a character or a class, never with a look-behind, so the regex engine
# can skip ahead to candidate positions; the checks of what comes before are done in Python.
_PUNCT = "，。！？：；、,.!?;:"
_PUNCT_RUN = re.compile(f"[{_PUNCT}]{{2,}}")
_ALLOWED_RUN = re.compile(r"[。.]{3,}|[！？!?]+")    # an ellipsis; "?!" emphasis
_LINE_STARTS_WITH_PUNCT = re.compile(f"^[ \t\u3000]*[{_PUNCT}]", re.M)
# a list number: digits and a period or 、 (not a decimal, "38.5"); 1-99 and not preceded by a
# digit or a period to count
_MARKER = re.compile(r"(\d{1,3})[.、．](?!\d)")
_EN_MARKER = re.compile(r"^[ \t]*(\d{1,2})[.)](?!\d)", re.M)
_ITEM_START = re.compile(r"(\d{1,2}[.、．)]|[-*•])")
_PERIOD_THEN_SPACE = re.compile(r"\.[ \t]+\S")
_SPACE_THEN_PUNCT = re.compile(r"[ \t]+[,.;:!?](?!\d)")
_ZH_REPEAT = re.compile(r"([\u4e00-\u9fff]{2})\1\1|([\u4e00-\u9fff]{3,10})\2")
# words, and runs of sentence punctuation / digits as tokens of their own ("headache.\n2.
# headache" is no repeat; "get well soon. get well soon." is)
_EN_TOKEN = re.compile(r"[a-z']+|[.!?;:\n\d]+")
_ZH_CLAUSE_SPLIT = re.compile(f"[{_PUNCT}\\s\\d．]+")
_EN_CLAUSE_SPLIT = re.compile(r"[,.;:!?\n]+")
# a sentence ends here: zh strong punctuation, a line break or a period (a list number's, too:
# the digits before it are stripped from the sentence)
_ZH_SENTENCE_END = re.compile(r"[。！？；\n.．]")
_EN_SENTENCE_END = re.compile(r"([.;!?\n])")
_DIGITS_AND_SPACE = " \t0123456789"
# words a sentence cannot end on: they announce something that must follow
_DANGLING_END = {
    "zh": ("包括", "提到", "表现为", "以及", "或者", "比如", "例如", "如果", "因为", "如果出现",
           "一旦出现", "的是", "请问", "建议您", "伴有", "或"),
    "en": (" and", " or", " the", " a", " an", " of", " to", " with", " including", " include",
           " such as", " if", " because", " your", " by", " from"),
}
_TERMINAL = "。！？.!?）)」』”\"'…~～"


@dataclass(frozen=True)
class Coherence:
    """A response's logical consistency: the score in (0, 1] and the faults behind it."""

    score: float
    faults: tuple[tuple[str, int], ...]   # (kind, count) for every kind found, in PENALTY order

    def describe(self) -> str:
        """"0.12 (repetition 3, numbering 2)" or "1.00 (no faults)", for transcripts."""
        found = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in self.faults) or "no faults"
        return f"{self.score:.2f} ({found})"


def repetitions(text: str, lang: str) -> int:
    """Clauses said again (4+ CJK characters / 3+ words; a long text may repeat one clause per
    ``REPEAT_ALLOWANCE`` characters, as articles do) and units repeated in a row ("您好您好您好",
    "祝您身体健康祝您身体健康", "the the", "get well soon get well soon")."""
    allowance = len(text) // REPEAT_ALLOWANCE
    if lang == "zh":
        clauses = [c for c in _ZH_CLAUSE_SPLIT.split(text) if len(c) >= 4]
        return max(0, _extra_occurrences(clauses) - allowance) + len(_ZH_REPEAT.findall(text))
    low = text.lower()
    clauses = [" ".join(c.split()) for c in _EN_CLAUSE_SPLIT.split(low)]
    clauses = [c for c in clauses if c.count(" ") >= 2]
    return max(0, _extra_occurrences(clauses) - allowance) + _words_in_a_row(_EN_TOKEN.findall(low))


def _extra_occurrences(items: list[str]) -> int:
    """How many items are repeats of an earlier one."""
    return len(items) - len(set(items))


def _words_in_a_row(words: list[str], longest: int = 6) -> int:
    """Units of 1-``longest`` tokens said twice in a row ("the the", "get well soon get well
    soon"); a unit said three times counts twice."""
    last: dict[str, int] = {}
    count, resume = 0, 0
    for i, w in enumerate(words):
        j = last.get(w)
        last[w] = i
        if i >= resume and j is not None and i - j <= longest and words[j:i] == words[i:2 * i - j]:
            count += 1
            resume = 2 * i - j                  # the repeat's own words start no new unit
    return count


def numbering_errors(text: str, lang: str) -> int:
    """List numbers that do not follow 1, 2, 3 (a new list may restart at 1), empty items
    ("1. ，"), and (zh) a number dangling at the end of the text."""
    if lang != "zh":
        numbers = [int(m.group(1)) for m in _EN_MARKER.finditer(text)]
        return sum(1 for prev, n in zip([0] + numbers, numbers) if n != prev + 1 and n != 1)
    errors, previous = 0, 0
    for m in _MARKER.finditer(text):
        start, n = m.start(), int(m.group(1))
        if n > 99 or (start and text[start - 1] in "0123456789."):
            continue                                  # part of a longer number
        errors += n != previous + 1 and n != 1
        previous = n
        rest = text[m.end():].lstrip(" \t")
        errors += not rest or rest[0] in _PUNCT or rest[0] == "\n" or bool(_MARKER.match(rest))
    tail = text.rstrip()
    digits = len(tail) - len(tail.rstrip("0123456789"))
    errors += 0 < digits <= 2 and tail[-digits - 1:-digits] not in (".", "．")
    return errors


def punctuation_artefacts(text: str, lang: str) -> int:
    """Clashing punctuation, lines starting with punctuation, stray Latin periods (zh) or a
    space before punctuation (en)."""
    runs = sum(1 for r in _PUNCT_RUN.findall(text) if not _ALLOWED_RUN.fullmatch(r))
    count = runs + len(_LINE_STARTS_WITH_PUNCT.findall(text))
    if lang != "zh":
        return count + sum(1 for m in _SPACE_THEN_PUNCT.finditer(text)
                           if m.start() and text[m.start() - 1].isalnum())
    if "." not in text:
        return count
    for i in (i for i, ch in enumerate(text) if ch == "."):
        before = text[i - 1] if i else "\n"
        after = text[i + 1] if i + 1 < len(text) else ""
        if after == "." or before == ".":
            continue                                  # an ellipsis, or a run counted above
        if before.isspace() or (before not in "0123456789" and _PERIOD_THEN_SPACE.match(text, i)):
            count += 1                                # "您好.   在", "的是. 刷牙", a lone "."
    return count


def dangling_sentences(text: str, lang: str) -> int:
    """Sentences ending on a word that announces more ("您提到。", "包括1.", "such as."), and
    intro lines ending in a colon with no list item after them."""
    ends = _DANGLING_END[lang]
    if lang == "zh":
        pieces = [p.rstrip(_DIGITS_AND_SPACE) for p in _ZH_SENTENCE_END.split(text)]
    else:   # an English question may end on a preposition ("Where does it spread to?")
        parts = _EN_SENTENCE_END.split(" " + text.lower())
        pieces = [p.rstrip() for p, end in zip(parts[::2], parts[1::2] + [""]) if end != "?"]
    count = sum(1 for p in pieces if p.endswith(ends))
    if "：" in text or ":" in text:
        lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
        for i, line in enumerate(lines):
            if line.endswith(("：", ":")):
                following = lines[i + 1] if i + 1 < len(lines) else ""
                count += not _ITEM_START.match(following)
    return count


def unterminated(text: str) -> int:
    """1 when the text stops without final punctuation (it was cut off)."""
    stripped = text.rstrip()
    return int(bool(stripped) and stripped[-1] not in _TERMINAL)


def no_content(text: str, lang: str) -> int:
    """1 when, pleasantries aside, the text has fewer than ``MIN_CONTENT`` CJK characters or
    digits (zh) / words (en): an empty answer is no consistent answer to a question."""
    low = text.lower()
    for phrase in _PLEASANTRIES.get(lang, _PLEASANTRIES["en"]):
        low = low.replace(phrase, " ")
    needed = MIN_CONTENT.get(lang, MIN_CONTENT["en"])
    found = islice((_ZH_CONTENT if lang == "zh" else _EN_CONTENT).finditer(low), needed)
    return int(sum(1 for _ in found) < needed)


def form_faults(text: str, lang: str) -> dict[str, int]:
    """Counts of the faults of form (see the module docstring) in ``text``."""
    return {
        "no_content": no_content(text, lang),
        "repetition": repetitions(text, lang),
        "numbering": numbering_errors(text, lang),
        "punctuation": punctuation_artefacts(text, lang),
        "broken_char": text.count("\ufffd"),
        "dangling": dangling_sentences(text, lang),
        "unterminated": unterminated(text),
    }


@lru_cache(maxsize=8192)
def coherence(text: str, lang: str, named: tuple[str, ...] = (),
              topic: frozenset[str] = frozenset(), departments: tuple[str, ...] = ()) -> Coherence:
    """The logical consistency of ``text``.

    ``named`` / ``departments``: the condition / department keys the response names (rubric
    features); ``topic``: the conditions the standard answer names or probes (advice for them
    is on topic).
    """
    counts = form_faults(text, lang)
    counts.update(topic_faults(text, lang, named, topic, departments))
    faults = tuple((k, counts[k]) for k in PENALTY if counts.get(k))
    return Coherence(math.exp(-sum(PENALTY[k] * n for k, n in faults)), faults)
