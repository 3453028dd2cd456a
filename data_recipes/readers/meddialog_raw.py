"""MedDialog raw text (Chinese and English) -> dialogue records.

A consultation starts with an ``id=N`` line and a URL, followed by blank-line separated sections:
``Doctor faculty`` (the department), ``Description`` (the patient's case, labelled fields),
``Dialogue`` (speaker tags ``病人：``/``医生：`` or ``Patient:``/``Doctor:``, full-width or ASCII
colon, alone on a line, the utterance on the next line(s)) and an optional ``Diagnosis and
suggestions``. One consultation may repeat its Description/Dialogue sections: the dialogues are
concatenated in order and the first description is kept. Consecutive utterances of one speaker
stay separate turns (merging them is the ``merge_consecutive_speakers`` transform's job); the
lines of a multi-line utterance are joined with "\\n".

Record: ``id`` = N, ``kind`` "dialogue", ``language`` from the tags, ``source_line`` = the id line,
``meta``: ``url``, ``department``, ``description`` (text; ``labels.parse_labelled`` splits it into
fields when needed), ``diagnosis_and_suggestions`` (text), ``diagnosis``, ``dialogue_blocks``
(count), and ``unparsed_lines`` for stray lines outside any section.

Quarantined, with the line of the problem: a block without an ``id=`` line (text before the first
id, or a URL after a blank line with no id before it), undecodable bytes, an unknown speaker tag
(another participant's tag alone on a line, e.g. ``护士：`` or ``Nurse:``, from
``speakers.OTHER_SPEAKERS``; headings such as ``建议：`` stay in the utterance), an empty
utterance, text before the first tag. A consultation no doctor answered (no Dialogue section, no
doctor turn) is quarantined as ``unanswered``: well-formed, but with no reply to learn from, so it
does not count against ``max_quarantine_fraction``. A Dialogue of doctor turns only (the
patient's question is the Description, common in MedDialog-CN and CovidDialog) is yielded with a
``defect``: the ``description_as_first_turn`` transform repairs it, and the build quarantines it
when no transform did. With several Description sections, ``meta["descriptions"]`` lists them all.

Speed: the file is read in 1 MiB chunks; a chunk (up to its last complete ``id=`` line) is
decoded at once and cut into consultations with one regex scan; a consultation is split into
sections with one ``re.split`` and its dialogue into turns with another (no Python loop per
line). Section headers and ``id=`` must start their line. :func:`read_meddialog_raw_range` reads
a byte range (a shard, readers/shards.py) with the same result as reading the file whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path

from data_recipes.readers.fields import RecordError, record_language
from data_recipes.readers.labels import clean_lines, diagnosis_of
from data_recipes.readers.speakers import (
    MEDDIALOG_ROLES, OTHER_SPEAKERS, tag_language,
)
from data_recipes.readers.streams import bad_bytes_reason, quarantine
from data_recipes.records import Quarantined, Record, Turn

CHUNK_BYTES = 1 << 20
ID_LINE = re.compile(rb"id[ \t]*=[ \t]*\d+[ \t]*\r?(?:\n|$)")        # matched where a line starts "id="
# the same, in decoded text: the newline before an id= line (its end is where a block is cut)
_ID_LINE_TEXT = re.compile(r"\nid(?=[ \t]*=[ \t]*[0-9]+[ \t]*\r?(?:\n|\Z))")
_ASCII_WS = " \t\n\r\x0b\x0c"                   # what bytes.strip() strips
_ID = re.compile(r"\s*id[ \t]*=[ \t]*(\d+)[ \t]*(?:\n|$)")
_HEADERS = {"Doctor faculty": "faculty", "Description": "description", "Dialogue": "dialogue",
            "Diagnosis and suggestions": "diagnosis"}
_TRAILING_WS = re.compile(r"[ \t]+(?=\n)")
# A header alone on its line. All start with "D": the literal "\nD" lets the regex engine skip to
# candidates, so the group holds the header without its "D".
_HEADER_LINE = re.compile(r"\nD(" + "|".join(h[1:] for h in _HEADERS) + r")(?=\n)")
_HEADER_TAILS = {header[1:]: name for header, name in _HEADERS.items()}
# A known speaker tag at the start of a line, with the newline before it (a literal first
# character lets the regex engine skip to candidates; "^" with MULTILINE tries every position).
_TAG_SPLIT = re.compile(r"\n[ \t]*(病人|患者|医生|大夫|[Pp]atient|[Dd]octor|PATIENT|DOCTOR)[ \t]*[:：][ \t]*")
_TAG_ROLES = {spelling: MEDDIALOG_ROLES[spelling.lower()] for spelling in
              ("病人", "患者", "医生", "大夫", "Patient", "patient", "PATIENT", "Doctor", "doctor", "DOCTOR")}
_TAG_LANGUAGES = {spelling: tag_language(spelling) for spelling in _TAG_ROLES}
# Another participant's tag alone on a line ("护士：", "Nurse:"): an unknown speaker.
_UNKNOWN_TAG = re.compile(r"^[ \t]*(" + "|".join(OTHER_SPEAKERS) + r")[ \t]*[:：][ \t]*$",
                          re.MULTILINE | re.IGNORECASE)


class _BlockError(RecordError):
    """A consultation-level problem at character ``offset`` of the block (``unanswered``: the
    consultation is well-formed but no doctor replied)."""

    def __init__(self, offset: int, reason: str, unanswered: bool = False):
        super().__init__(reason)
        self.offset = offset
        self.unanswered = unanswered


def read_meddialog_raw(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream the consultations of a MedDialog raw text file (see the module docstring)."""
    return read_meddialog_raw_range(path, 0, None, 1, language)


def read_meddialog_raw_range(path: str | Path, start: int, end: int | None, line: int,
                             language: str | None = None) -> Iterator[Record | Quarantined]:
    """The consultations between byte ``start`` (an ``id=`` line start, or 0) and byte ``end``
    (the next one's, or None: the end of the file); ``line``: the line number at ``start``.
    Reading a file in such ranges gives exactly what reading it whole gives (readers/shards.py)."""
    for start, text in _blocks(path, start, end, line):
        if isinstance(text, bytes):
            yield _bad_bytes(path, start, text)
            continue
        for offset, part in _split_orphans(text):
            line = start + text.count("\n", 0, offset) if offset else start
            try:
                yield _consultation(path, line, part, language)
            except _BlockError as error:
                yield quarantine(path, line + part.count("\n", 0, error.offset), str(error), part,
                                 unanswered=error.unanswered)


def _normalise(text: str) -> str:
    """CRLF -> LF, no trailing blanks on lines, a final newline (line numbers are unchanged)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if " \n" in text or "\t\n" in text:
        text = _TRAILING_WS.sub("", text)
    return text if text.endswith("\n") else text + "\n"


def _blocks(path: str | Path, start: int = 0, end: int | None = None,
            line: int = 1) -> Iterator[tuple[int, str | bytes]]:
    """(line number of its first line, normalised text) of each consultation: text from one
    ``id=`` line to the next; the raw bytes instead of the text when they are not UTF-8. Leading
    text before the first id comes out as its own block.

    The file is read in chunks; everything up to a chunk's last complete ``id=`` line is decoded
    at once (and cut with one regex scan), so a consultation costs no decode call of its own."""
    buf, left = b"", None if end is None else end - start
    with open(path, "rb") as f:
        f.seek(start)
        while True:
            data = f.read(CHUNK_BYTES if left is None else min(CHUNK_BYTES, left))
            if left is not None:
                left -= len(data)
            if start == 0 and not buf and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            start = -1                                 # the BOM can only be at the very start
            buf += data
            eof = not data
            cut = len(buf) if eof else _last_id_line_start(buf)
            if cut:
                try:
                    text = buf[:cut].decode("utf-8")
                except UnicodeDecodeError:
                    yield from _byte_blocks(buf[:cut], line)
                    line += buf.count(b"\n", 0, cut)
                else:
                    yield from _text_blocks(text, line)
                    line += text.count("\n")
                buf = buf[cut:]
            if eof:
                return


def _text_blocks(text: str, line: int) -> Iterator[tuple[int, str]]:
    """The consultations of decoded text that ends where a block ends."""
    messy = "\r" in text or " \n" in text or "\t\n" in text      # only then normalise block by block
    prev = 0
    for cut in [m.start() + 1 for m in _ID_LINE_TEXT.finditer(text)] + [len(text)]:
        block = text[prev:cut]
        if block.startswith("id") or block.strip(_ASCII_WS):
            yield line, _normalise(block) if messy or not block.endswith("\n") else block
        line += block.count("\n")
        prev = cut


def _byte_blocks(buf: bytes, line: int) -> Iterator[tuple[int, str | bytes]]:
    """The consultations of bytes with an undecodable byte somewhere: each decoded on its own."""
    prev = 0
    for cut in _id_line_starts(buf, True) + [len(buf)]:
        data = buf[prev:cut]
        if data.strip():
            try:
                yield line, _normalise(data.decode("utf-8"))
            except UnicodeDecodeError:
                yield line, data
        line += buf.count(b"\n", prev, cut)
        prev = cut


def _last_id_line_start(buf: bytes) -> int:
    """Offset of the last complete ``id=N`` line after the first byte (0: none yet). An id line
    touching the end of the buffer may be incomplete and is left for the next chunk."""
    at = buf.rfind(b"\nid")
    while at >= 0:
        match = ID_LINE.match(buf, at + 1)
        if match and match.end() < len(buf):
            return at + 1
        at = buf.rfind(b"\nid", 0, at)
    return 0


def _id_line_starts(buf: bytes, eof: bool) -> list[int]:
    """Offsets of the ``id=N`` lines after the first byte. Before end of file, an id line that
    touches the end of the buffer may be incomplete and is left for the next chunk."""
    starts = []
    at = buf.find(b"\nid", 0)
    while at >= 0:
        match = ID_LINE.match(buf, at + 1)
        if match and (eof or match.end() < len(buf)):
            starts.append(at + 1)
        at = buf.find(b"\nid", at + 1)
    return starts


def _bad_bytes(path, start: int, data: bytes) -> Quarantined:
    for offset, raw_line in enumerate(data.split(b"\n")):
        try:
            raw_line.decode("utf-8")
        except UnicodeDecodeError as error:
            return quarantine(path, start + offset, bad_bytes_reason(error), data.decode("utf-8", "replace"))
    raise AssertionError("a block that failed to decode has no undecodable line")  # pragma: no cover


def _header_marks(text: str, begin: int) -> list[tuple[int, int, str]]:
    """(header line offset, body offset, section name) of every section header, in text order."""
    return [(m.start() + 1, m.end() + 1, _HEADER_TAILS[m.group(1)])
            for m in _HEADER_LINE.finditer(text, max(begin - 1, 0))]


def _split_orphans(text: str) -> list[tuple[int, str]]:
    """Cut a block where a URL follows a blank line after the sections began (a lost id= line)."""
    at = text.find("\n\nhttp")
    if at < 0:                                   # the common case: nothing to cut
        return [(0, text)]
    marks = _header_marks(text, 0)
    if not marks:
        return [(0, text)]
    cuts, at = [], text.find("\n\nhttp", marks[0][0])
    while at >= 0:
        cuts.append(at + 2)
        at = text.find("\n\nhttp", at + 2)
    bounds = [0, *cuts, len(text)]
    return [(bounds[i], text[bounds[i]:bounds[i + 1]]) for i in range(len(bounds) - 1)]


def _consultation(path, line: int, text: str, language: str | None) -> Record:
    # blocks start with "id" (no copy of the block to find its leading blank lines)
    first = 0 if text.startswith("id") else len(text) - len(text.lstrip())
    id_match = _ID.match(text)
    if not id_match:
        raise _BlockError(first, f"missing id= line: consultation block starts with {text.strip()[:40]!r}")
    cid = id_match.group(1)
    sections = _sections(text, id_match.end())
    if not sections["dialogue"]:
        raise _BlockError(0, f"no Dialogue section in consultation id={cid}", unanswered=True)
    turns: list[Turn] = []
    tag_lang = None
    for offset, body in sections["dialogue"]:
        section_turns, lang = _dialogue(body, offset, cid)
        turns += section_turns
        tag_lang = tag_lang or lang
    roles = {t.role for t in turns}
    if "assistant" not in roles:
        raise _BlockError(0, f"consultation id={cid} has no doctor/assistant turn", unanswered=True)
    record = Record(id=cid, kind="dialogue", turns=turns, meta=_meta(sections), source_file=str(path),
                    source_line=line + text.count("\n", 0, first) if first else line)
    record.language = language or tag_lang or record_language(record)
    if "user" not in roles:
        record.defect = quarantine(path, record.source_line, f"consultation id={cid} has no patient/user turn "
                                   "(its question is the Description: add the description_as_first_turn "
                                   "transform)", text)
    return record


def _sections(text: str, begin: int) -> dict[str, list]:
    """Section name -> [(offset, body text), ...]; plus ``preamble`` (text before the first).

    One ``split`` at the header lines; a body keeps the newline that ends its header line (so
    ``offset`` is where that newline is) and the one that ends its last line."""
    base = begin - 1                       # the newline that ends the id= line
    parts = _HEADER_LINE.split(text[base:])
    found: dict = {"faculty": [], "description": [], "dialogue": [], "diagnosis": [], "preamble": parts[0]}
    at, last = base + len(parts[0]), len(parts) - 2
    for i in range(1, len(parts), 2):
        body = parts[i + 1]
        at += 2 + len(parts[i])                     # "\nD" + the rest of the header
        found[_HEADER_TAILS[parts[i]]].append((at, body if i == last else body + "\n"))
        at += len(body)
    return found


def _dialogue(body: str, offset: int, cid: str) -> tuple[list[Turn], str | None]:
    """Turns of one Dialogue section (``body`` starts with the newline ending its header line);
    errors carry the offset of the offending line.

    ``_TAG_SPLIT.split`` gives [text before the first tag, tag, utterance, tag, utterance, ...],
    where an utterance is the rest of its tag's line and the lines up to the next tag."""
    parts = _TAG_SPLIT.split(body)
    tags, texts = parts[1::2], parts[2::2]
    colon_lines = body.count("：\n") + body.count(":\n")
    # a tag alone on its line leaves an utterance that is empty or starts with the newline
    if colon_lines and colon_lines > texts.count("") + sum(map(str.startswith, texts, repeat("\n"))):
        unknown = _UNKNOWN_TAG.search(body)
        if unknown:
            raise _BlockError(offset + unknown.start(),
                              f"unknown speaker tag {unknown.group(0).strip()!r} in consultation id={cid}")
    head = parts[0]
    if head and not head.isspace():
        raise _BlockError(offset + len(head) - len(head.lstrip()),
                          f"dialogue text before any speaker tag in consultation id={cid}")
    contents = [t if "\n" not in t else clean_lines(t) for t in map(str.strip, texts)]
    if "" in contents:
        i = contents.index("")
        at = [m.start() + 1 for m in _TAG_SPLIT.finditer(body)][i]
        raise _BlockError(offset + at, f"empty utterance after {tags[i]!r} tag in consultation id={cid}")
    return list(map(Turn, map(_TAG_ROLES.__getitem__, tags), contents)), _TAG_LANGUAGES[tags[0]] if tags else None


def _meta(sections: dict) -> dict:
    meta: dict = {"dialogue_blocks": len(sections["dialogue"])}
    preamble = sections["preamble"].strip()
    preamble = [line.strip() for line in preamble.split("\n") if line.strip()] if "\n" in preamble else \
        [preamble] if preamble else []
    if preamble and preamble[0].startswith("http"):
        meta["url"] = preamble.pop(0)
    if sections["faculty"]:
        department = clean_lines(sections["faculty"][0][1])
        if department:
            meta["department"] = department.split("\n", 1)[0]
    if sections["description"]:
        meta["description"] = clean_lines(sections["description"][0][1])
        if len(sections["description"]) > 1:
            meta["descriptions"] = [clean_lines(body) for _, body in sections["description"]]
    if sections["diagnosis"]:
        text = clean_lines(sections["diagnosis"][0][1])
        meta["diagnosis_and_suggestions"] = text
        diagnosis = diagnosis_of(text)
        if diagnosis:
            meta["diagnosis"] = diagnosis
    if preamble:
        meta["unparsed_lines"] = preamble[:20]
    return meta


__all__ = ["read_meddialog_raw", "read_meddialog_raw_range"]
