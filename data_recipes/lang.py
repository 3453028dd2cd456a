"""Language detection by script: is a text Chinese, English, or something else?

Readers fill ``Record.language`` with it when a format does not say. It is a character-ratio
heuristic, not a classifier: Han characters carry far more text per character than Latin letters,
so a Chinese text with English drug names or lab codes still counts as Chinese.

    detect_language("医生你好，我头痛三天了，吃了ibuprofen没用")   # "zh"
    detect_language("I have had a headache for three days")         # "en"
    detect_language("頭が痛いです") / detect_language("12345")        # "other"
"""

from __future__ import annotations

import re

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_LETTER = re.compile(r"[^\W\d_]")

SAMPLE_CHARS = 2000          # look at the first 2,000 characters only: enough, and O(1) per record
HAN_SHARE_FOR_ZH = 0.2       # share of letters that are Han for "zh"
KANA_SHARE_FOR_OTHER = 0.1   # Japanese/Korean text also contains Han: kana/hangul vetoes "zh"
LATIN_SHARE_FOR_EN = 0.7     # share of letters that are Latin for "en"


def detect_language(text: str) -> str:
    """``"zh"``, ``"en"`` or ``"other"`` (no letters, another script, or too mixed to say)."""
    sample = text[:SAMPLE_CHARS]
    letters = len(_LETTER.findall(sample))
    if letters == 0:
        return "other"
    han = len(_HAN.findall(sample))
    if len(_KANA_HANGUL.findall(sample)) > KANA_SHARE_FOR_OTHER * letters:
        return "other"
    if han >= HAN_SHARE_FOR_ZH * letters:
        return "zh"
    if len(_LATIN.findall(sample)) >= LATIN_SHARE_FOR_EN * letters:
        return "en"
    return "other"
