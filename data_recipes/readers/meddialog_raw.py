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
``speakers.OTHER_SPEAKERS``; headings such as ``建议：`` stay in the utterance), an empty utterance, text before the first tag,
no Dialogue section, no doctor turn or no patient turn.

Speed: the file is read in 1 MiB chunks and cut into consultations with ``bytes.find``; each
consultation is decoded once and split into sections and turns with ``str.find`` and one regex
scan of its dialogue (no Python loop per line). Section headers and ``id=`` must start their line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from data_recipes.readers.fields import RecordError, record_language
from data_recipes.readers.labels import clean_lines, diagnosis_from, parse_labelled
from data_recipes.readers.speakers import (
    MEDDIALOG_ROLES, OTHER_SPEAKERS, require_dialogue_roles, tag_language,
)
from data_recipes.readers.streams import bad_bytes_reason, quarantine
from data_recipes.records import Quarantined, Record, Turn

CHUNK_BYTES = 1 << 20
_ID_LINE = re.compile(rb"id[ \t]*=[ \t]*\d+[ \t]*\r?(?:\n|$)")        # matched where a line starts "id="
_ID = re.compile(r"\s*id[ \t]*=[ \t]*(\d+)[ \t]*(?:\n|$)")
_HEADERS = {"Doctor faculty": "faculty", "Description": "description", "Dialogue": "dialogue",
            "Diagnosis and suggestions": "diagnosis"}
_TRAILING_WS = re.compile(r"[ \t]+(?=\n)")
_TAG = re.compile(r"^[ \t]*(病人|患者|医生|大夫|[Pp]atient|[Dd]octor|PATIENT|DOCTOR)[ \t]*[:：][ \t]*(.*)$",
                  re.MULTILINE)
# Another participant's tag alone on a line ("护士：", "Nurse:"): an unknown speaker.
_UNKNOWN_TAG = re.compile(r"^[ \t]*(" + "|".join(OTHER_SPEAKERS) + r")[ \t]*[:：][ \t]*$",
                          re.MULTILINE | re.IGNORECASE)


class _BlockError(RecordError):
    """A consultation-level problem at character ``offset`` of the block."""

    def __init__(self, offset: int, reason: str):
        super().__init__(reason)
        self.offset = offset


def read_meddialog_raw(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream the consultations of a MedDialog raw text file (see the module docstring)."""
    for start, data in _raw_blocks(path):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            yield _bad_bytes(path, start, data)
            continue
        text = _normalise(text)
        for offset, part in _split_orphans(text):
            line = start + text.count("\n", 0, offset)
            try:
                yield _consultation(path, line, part, language)
            except _BlockError as error:
                yield quarantine(path, line + part.count("\n", 0, error.offset), str(error), part)


def _normalise(text: str) -> str:
    """CRLF -> LF, no trailing blanks on lines, a final newline (line numbers are unchanged)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if " \n" in text or "\t\n" in text:
        text = _TRAILING_WS.sub("", text)
    return text if text.endswith("\n") else text + "\n"


def _raw_blocks(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number of its first line, bytes) of each consultation: text from one ``id=`` line
    to the next. Leading text before the first id comes out as its own block."""
    buf, line = b"", 1
    with open(path, "rb") as f:
        while True:
            data = f.read(CHUNK_BYTES)
            if line == 1 and not buf and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            buf += data
            eof = not data
            cuts = _id_line_starts(buf, eof) + ([len(buf)] if eof else [])
            prev = 0
            for cut in cuts:
                if buf[prev:cut].strip():
                    yield line, buf[prev:cut]
                line += buf.count(b"\n", prev, cut)
                prev = cut
            buf = buf[prev:]
            if eof:
                return


def _id_line_starts(buf: bytes, eof: bool) -> list[int]:
    """Offsets of the ``id=N`` lines after the first byte. Before end of file, an id line that
    touches the end of the buffer may be incomplete and is left for the next chunk."""
    starts = []
    at = buf.find(b"\nid", 0)
    while at >= 0:
        match = _ID_LINE.match(buf, at + 1)
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
    marks = []
    for header, name in _HEADERS.items():
        needle = "\n" + header + "\n"
        at = text.find(needle, max(begin - 1, 0))
        while at >= 0:
            marks.append((at + 1, at + len(needle), name))
            at = text.find(needle, at + 1)
    marks.sort()
    return marks


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
    first = len(text) - len(text.lstrip())
    id_match = _ID.match(text)
    if not id_match:
        raise _BlockError(first, f"missing id= line: consultation block starts with {text.strip()[:40]!r}")
    cid = id_match.group(1)
    sections = _sections(text, id_match.end())
    if not sections["dialogue"]:
        raise _BlockError(0, f"no Dialogue section in consultation id={cid}")
    turns: list[Turn] = []
    tag_lang = None
    for offset, body in sections["dialogue"]:
        section_turns, lang = _dialogue(body, offset, cid)
        turns += section_turns
        tag_lang = tag_lang or lang
    try:
        require_dialogue_roles(turns, f"consultation id={cid}")
    except RecordError as error:
        raise _BlockError(0, str(error)) from None
    record = Record(id=cid, kind="dialogue", turns=turns, meta=_meta(sections), source_file=str(path),
                    source_line=line + text.count("\n", 0, first))
    record.language = language or tag_lang or record_language(record)
    return record


def _sections(text: str, begin: int) -> dict[str, list]:
    """Section name -> [(offset, body text), ...]; plus ``preamble`` (text before the first)."""
    found: dict[str, list] = {"faculty": [], "description": [], "dialogue": [], "diagnosis": []}
    marks = _header_marks(text, begin)
    found["preamble"] = text[begin:marks[0][0] if marks else len(text)]
    for i, (_, body_start, name) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else len(text)
        found[name].append((body_start, text[body_start:end]))
    return found


def _dialogue(body: str, offset: int, cid: str) -> tuple[list[Turn], str | None]:
    """Turns of one Dialogue section; errors carry the offset of the offending line."""
    tags = list(_TAG.finditer(body))
    colon_lines = body.count("：\n") + body.count(":\n")
    if colon_lines > sum(1 for tag in tags if not tag.group(2)):   # some other line ends in a colon
        unknown = _UNKNOWN_TAG.search(body)
        if unknown:
            raise _BlockError(offset + unknown.start(),
                              f"unknown speaker tag {unknown.group(0).strip()!r} in consultation id={cid}")
    head = body[: tags[0].start()] if tags else body
    if head.strip():
        raise _BlockError(offset + len(head) - len(head.lstrip()),
                          f"dialogue text before any speaker tag in consultation id={cid}")
    turns = []
    for i, tag in enumerate(tags):
        end = tags[i + 1].start() if i + 1 < len(tags) else len(body)
        content = clean_lines(tag.group(2) + body[tag.end():end])
        if not content:
            raise _BlockError(offset + tag.start(),
                              f"empty utterance after {tag.group(1)!r} tag in consultation id={cid}")
        turns.append(Turn(MEDDIALOG_ROLES[tag.group(1).lower()], content))
    return turns, tag_language(tags[0].group(1)) if tags else None


def _meta(sections: dict) -> dict:
    meta: dict = {"dialogue_blocks": len(sections["dialogue"])}
    preamble = [line.strip() for line in sections["preamble"].split("\n") if line.strip()]
    if preamble and preamble[0].startswith("http"):
        meta["url"] = preamble.pop(0)
    if sections["faculty"]:
        department = clean_lines(sections["faculty"][0][1])
        if department:
            meta["department"] = department.split("\n", 1)[0]
    if sections["description"]:
        meta["description"] = clean_lines(sections["description"][0][1])
    if sections["diagnosis"]:
        text = clean_lines(sections["diagnosis"][0][1])
        meta["diagnosis_and_suggestions"] = text
        diagnosis = diagnosis_from(parse_labelled(text))
        if diagnosis:
            meta["diagnosis"] = diagnosis
    if preamble:
        meta["unparsed_lines"] = preamble[:20]
    return meta


__all__ = ["read_meddialog_raw"]
