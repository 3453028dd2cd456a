"""Rows of one mix component from a batch of records: builder output + ids, split, provenance.

This runs with the per-record work (in Ray workers for ``--ray``), before dedup decisions: every
record's rows are built, with ``record_index`` saying which record made each row, so the build
can keep the rows of the records dedup keeps with one vectorised filter. The exact keys for
row-level dedup and the contamination flags of train rows are computed here too.

Speed: rows are gathered column by column (no per-row dict is rebuilt), and the text a row is
compared on is never built per row. A record's rows share its message dicts (a per-turn example
is a prefix of the conversation), so each distinct message or answer text of the batch is a
*part* stored once in a :class:`PartTable`; a row is a list of part numbers. The ``messages``
column is one Arrow ``take`` of the parts, and a row's comparison text (its parts, each followed
by a separator) is gathered from the parts' normalised code points with numpy (decontamination)
or hashed part by part, a per-turn example continuing the hash of the one before (exact keys).
Builders with a row plan (``builders.PLANS``: rows that are prefixes of the record's messages)
make no row or message dict at all: a row is a slice of the record's part numbers.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from itertools import chain

import numpy as np
import pyarrow as pa

from data_recipes.records import Record
from data_recipes.transforms import BUILDER_KINDS, BUILDERS
from data_recipes.transforms.builders import PLANS
from data_recipes.transforms.decontaminate import EvalNgramIndex, EvalSetIndex
from data_recipes.transforms.shingles import CodeBatch, concat_batches, encode_batch
from data_recipes.writers import ID_COLUMN, MESSAGE_FIELDS, SPLIT_COLUMN, splits_of, spool_schema

_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:/#@+-]*")     # ids JSON holds without escapes
PART_END = "\u241e"        # ends every part of a row's comparison text
ROLE_MARK = "\u241f"       # between a message's role and its content
# builder fields of each output besides messages (the build adds ids, source, provenance, ...)
FIELDS = {"sft": (), "prompts": ("reference", "department"), "preferences": ("chosen", "rejected", "margin"),
          "ranked": ("responses", "ranks", "response_sources"), "pretrain": ("text",),
          "cases": ("reply", "department", "diagnosis", "doctor", "doctor_profile")}


@dataclass
class ComponentJob:
    """What building one component's rows needs (picklable)."""

    kind: str                 # output kind
    index: int                # position in the output's mix
    build: str                # builder name
    source: str
    origin: str
    provenance: dict          # recipe, recipe_hash, transforms, build
    seed: int
    train: float
    validation: float
    dedup_rows: bool


@dataclass
class RowBlock:
    """A component's rows for one batch of records, before dedup and decontamination filters."""

    batch: pa.RecordBatch            # spool schema (output columns + split index)
    record_index: np.ndarray         # (R,) which record of the batch made each row
    row_keys: np.ndarray | None      # (R,) uint64 exact keys, when the output drops duplicate rows
    contaminated: np.ndarray | None  # (R,) True for train rows sharing an n-gram with an eval set
    eval_case: np.ndarray | None = None   # (R,) int64: the recipe eval case a row overlaps, -1 none (any split)
    eval_match: np.ndarray | None = None  # (R,) uint8: how (decontaminate.MATCH_KINDS)


class PartTable:
    """The distinct parts of a batch's rows: messages (role, content) and answer texts (role None).

    Parts are keyed by value, so a message shared by several rows (or equal in several records)
    is stored, encoded and hashed once."""

    def __init__(self) -> None:
        self.index: dict[tuple[str | None, str], int] = {}
        self.roles: list[str | None] = []
        self.contents: list[str] = []
        self._codes: list[CodeBatch] = []           # encoded in chunks, as parts are added
        self._encoded = 0
        self._arrow: list[pa.StructArray] = []
        self._converted = 0
        self._records: dict[int, tuple[list, list[int]]] = {}   # id(record) -> (its turns, their parts)
        self._eval_case = np.zeros(0, dtype=np.int64)           # per part: eval case it overlaps, -1 none
        self._eval_match = np.zeros(0, dtype=np.uint8)

    def messages(self, messages: list[dict]) -> list[int]:
        """Part numbers of a list of message dicts."""
        return self._numbers([(m["role"], m["content"]) for m in messages])

    def record_turns(self, record: Record) -> list[int]:
        """:meth:`turns` of a record, remembered for the batch's other components (the cache
        holds the turn list, so an id is never reused while its entry lives)."""
        hit = self._records.get(id(record))
        if hit is not None and hit[0] is record.turns:
            return hit[1]
        out = self.turns(record.turns)
        self._records[id(record)] = (record.turns, out)
        return out

    def turns(self, turns: list) -> list[int]:
        """Part numbers of a list of turns (the parts of their message dicts, without making them)."""
        return self._numbers([(t.role, t.content) for t in turns])

    def _numbers(self, keys: list[tuple[str, str]]) -> list[int]:
        """Part numbers of (role, content) keys, adding the new ones."""
        index, out = self.index, []
        for key in keys:
            j = index.get(key)
            if j is None:
                j = index[key] = len(self.roles)
                self.roles.append(key[0])
                self.contents.append(key[1])
            out.append(j)
        return out

    def text(self, text: str) -> int:
        """Part number of an answer or document text."""
        j = self.index.get((None, text))
        if j is None:
            j = self.index[(None, text)] = len(self.roles)
            self.roles.append(None)
            self.contents.append(text)
        return j

    def codes(self) -> CodeBatch:
        """Every part's normalised comparison text ("role\u241fcontent" or the text, then PART_END)."""
        if self._encoded < len(self.roles):
            new = zip(self.roles[self._encoded:], self.contents[self._encoded:])
            self._codes.append(encode_batch([c + PART_END if r is None else f"{r}{ROLE_MARK}{c}{PART_END}"
                                             for r, c in new]))
            self._encoded = len(self.roles)
            if len(self._codes) > 1:
                self._codes = [concat_batches(self._codes)]
        return self._codes[0] if self._codes else encode_batch([])

    def eval_overlaps(self, index: EvalSetIndex) -> tuple[np.ndarray, np.ndarray]:
        """Per part, the eval case its text overlaps (-1: none) and how; parts are checked once."""
        done = len(self._eval_case)
        if done < len(self.contents):
            case, match = index.match_codes(encode_batch(self.contents[done:]))
            self._eval_case = np.concatenate([self._eval_case, case])
            self._eval_match = np.concatenate([self._eval_match, match])
        return self._eval_case, self._eval_match

    def message_structs(self) -> pa.ChunkedArray:
        """Every part as a {role, content} struct (answer parts have a null role; rows never use them)."""
        if self._converted < len(self.roles):
            self._arrow.append(pa.StructArray.from_arrays(
                [pa.array(self.roles[self._converted:], pa.string()),
                 pa.array(self.contents[self._converted:], pa.string())], fields=MESSAGE_FIELDS))
            self._converted = len(self.roles)
        return pa.chunked_array(self._arrow, pa.struct(MESSAGE_FIELDS))


@dataclass
class RecordKeys:
    """Per record of a batch, what every component of the source shares."""

    cids: list[str]           # consultation id: "<source>:<record id>"
    splits: list[int]         # index into SPLITS
    places: list[str]         # ', "line": N, "record_id": <id as JSON>' (the provenance after its head)


def record_keys(records: list[Record], source: str, seed: int, train: float, validation: float) -> RecordKeys:
    """Consultation ids, splits and provenance places of a batch's records."""
    cids = [f"{source}:{r.id}" for r in records]
    return RecordKeys(cids=cids, splits=splits_of(cids, seed, train, validation),
                      places=[f', "line": {r.source_line}, "record_id": '
                              + (f'"{r.id}"' if _PLAIN_ID.fullmatch(r.id) else json.dumps(r.id, ensure_ascii=False))
                              for r in records])


def build_rows(job: ComponentJob, records: list[Record], where: dict[str, str], keys: RecordKeys,
               parts: PartTable, eval_index: EvalNgramIndex | None = None,
               eval_sets: EvalSetIndex | None = None) -> RowBlock:
    """Every row the component's builder makes of ``records`` (``where``: the head of the rows'
    provenance, ``{"file", "sha256"}`` of the records' file, see inputs.py; ``keys``:
    :func:`record_keys`; ``parts``: the batch's table, shared by its components). ``eval_index``
    flags train rows sharing an n-gram with ``decontaminate:`` files; ``eval_sets`` marks every
    row (any split) one of whose texts overlaps a case of the recipe's eval sets."""
    columns, refs, owners = _collect(job, records, where, keys, parts, eval_index is not None or eval_sets is not None)
    schema = spool_schema(job.kind)
    arrays = []
    for field in schema:
        if field.name == "messages":
            counts = np.fromiter(map(len, refs["messages"]), dtype=np.int32, count=len(owners))
            offsets = np.zeros(len(owners) + 1, dtype=np.int32)
            np.cumsum(counts, out=offsets[1:])
            flat = np.fromiter(chain.from_iterable(refs["messages"]), dtype=np.int64, count=int(offsets[-1]))
            values = parts.message_structs().take(flat).combine_chunks()
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets), values, type=field.type))
        else:
            arrays.append(pa.array(columns[field.name], field.type))
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    row_keys = row_exact_keys(parts.codes(), refs["key"]) if job.dedup_rows else None
    dirty = None
    if eval_index is not None:
        dirty = np.zeros(len(owners), dtype=bool)
        train = [i for i, s in enumerate(columns[SPLIT_COLUMN]) if s == 0]
        if train:
            texts = _row_codes(parts.codes(), [refs["check"][i] for i in train], drop_last=True)
            dirty[train] = eval_index.contaminated_codes(texts)
    block = RowBlock(batch=batch, record_index=np.array(owners, dtype=np.int64), row_keys=row_keys,
                     contaminated=dirty)
    if eval_sets is not None:
        block.eval_case, block.eval_match = _row_overlaps(parts.eval_overlaps(eval_sets), refs["check"])
    return block


def _row_overlaps(part_hits: tuple[np.ndarray, np.ndarray], rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """A row overlaps an eval case when one of its parts does: (R,) case numbers (-1: none) and kinds."""
    case_of, match_of = part_hits
    counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(counts.sum()))
    row_of = np.repeat(np.arange(len(rows)), counts)
    case = np.full(len(rows), -1, dtype=np.int64)
    match = np.zeros(len(rows), dtype=np.uint8)
    hit = case_of[flat] >= 0
    np.maximum.at(case, row_of[hit], case_of[flat][hit])
    np.maximum.at(match, row_of[hit], match_of[flat][hit])
    return case, match


def _collect(job: ComponentJob, records: list[Record], where: dict[str, str], keys: RecordKeys,
             parts: PartTable, check: bool) -> tuple[dict[str, list], dict[str, list[list[int]]], list[int]]:
    """Run the builder on every record: column lists, each row's part numbers, the owner records.

    ``refs["key"]``: the parts a row's exact key covers (messages and answers, as ``row_text``
    without answers); ``refs["check"]``: the parts decontamination reads (with a prompt's reference).
    Rows are gathered as tuples (owner, provenance head, suffix, message parts, turn, field values)
    and turned into columns with one comprehension per column."""
    kind, fields = job.kind, FIELDS[job.kind]
    # rows compared on more than their messages (answers, documents, a prompt's reference)
    answers = (job.dedup_rows or check) and (kind in ("pretrain", "preferences", "ranked")
                                             or check and kind == "prompts")
    rows, key_refs, check_refs = _row_tuples(job, records, where, keys, parts, check if answers else None)
    cids, splits = keys.cids, keys.splits
    owners = [row[0] for row in rows]
    msg_refs = [row[3] for row in rows]
    columns = {
        ID_COLUMN[kind]: [f"{cids[row[0]]}#{row[2]}" for row in rows],
        "consultation_id": [cids[o] for o in owners], "source": [job.source] * len(rows),
        "origin": [job.origin] * len(rows), "language": [records[o].language for o in owners],
        "provenance": [row[1] + (f', "turn": {row[4]}}}' if row[4] is not None else "}") for row in rows],
        SPLIT_COLUMN: [splits[o] for o in owners],
        **{name: [row[5][j] for row in rows] for j, name in enumerate(fields)}}
    if not answers:                      # a row is compared on its messages
        key_refs = check_refs = msg_refs
    return columns, {"messages": msg_refs, "key": key_refs, "check": check_refs}, owners


def _row_tuples(job: ComponentJob, records: list[Record], where: dict[str, str], keys: RecordKeys,
                parts: PartTable, answers_check: bool | None) -> tuple[list[tuple], list[list[int]], list[list[int]]]:
    """Every row of the component as (owner, provenance head, suffix, message parts, turn, field
    values); with ``answers_check`` set (True: decontamination reads a prompt's reference), the
    rows' key and check parts with answers (:func:`_answer_parts`), else two empty lists.

    A planned builder's rows are prefixes of the record's messages: their parts are slices of
    the record's, and no row or message dict is made (builders.PLANS)."""
    build, accepted = BUILDERS[job.kind][job.build], BUILDER_KINDS[job.build]
    kind, fields = job.kind, FIELDS[job.kind]
    prefix = json.dumps({**where, **job.provenance}, ensure_ascii=False)[:-1]
    plan = None if answers_check is not None else PLANS.get(job.build)
    places, record_turns = keys.places, parts.record_turns
    rows: list[tuple] = []
    key_refs: list[list[int]] = []
    check_refs: list[list[int]] = []
    for index, record in enumerate(records):
        if record.kind not in accepted:
            continue
        planned = plan(record) if plan is not None else None
        made = build(record) if planned is None else planned
        if not made:
            continue
        head = prefix + places[index]
        if planned is not None:
            full = record_turns(record)
            rows += [(index, head, suffix, full[:n], turn, values) for suffix, n, turn, values in planned]
            continue
        for part in made:
            own = parts.messages(part["messages"]) if "messages" in part else []
            values = tuple(part.get(name) for name in fields)
            rows.append((index, head, part["suffix"], own, part.get("turn"), values))
            if answers_check is not None:
                key, checked = _answer_parts(kind, part, own, parts, answers_check)
                key_refs.append(key)
                check_refs.append(checked)
    return rows, key_refs, check_refs


def _answer_parts(kind: str, row: dict, messages: list[int], parts: PartTable,
                  check: bool) -> tuple[list[int], list[int]]:
    """A row's key parts and decontamination parts (see :func:`row_text`)."""
    if kind == "pretrain":
        key = messages + [parts.text(row["text"])]
    elif kind == "preferences":
        key = messages + [parts.text(row["chosen"]), parts.text(row["rejected"])]
    elif kind == "ranked":
        key = messages + [parts.text(r) for r in row["responses"]]
    else:
        key = messages
    if check and kind == "prompts" and row.get("reference"):
        return key, key + [parts.text(row["reference"])]
    return key, key


def row_exact_keys(codes: CodeBatch, rows: list[list[int]]) -> np.ndarray:
    """``exact_keys(_row_codes(codes, rows))`` without gathering the rows' texts: each row's
    parts are fed to blake2b in turn, and a row that extends the previous one (the per-turn
    examples of a record are growing prefixes of its messages) continues its hash."""
    data = memoryview(codes.codes).cast("B")
    starts = (4 * codes.starts).tolist()
    ends = (4 * (codes.starts + codes.lengths)).tolist()
    blake2b, digests = hashlib.blake2b, []
    prev: list[int] = []
    h = None
    for row in rows:
        done = len(prev)
        if h is None or done > len(row) or row[:done] != prev:
            h, done = blake2b(digest_size=8), 0
        for j in row[done:] if done else row:
            h.update(data[starts[j]:ends[j]])
        digests.append(h.digest())
        prev = row
    return np.frombuffer(b"".join(digests), dtype="<u8").astype(np.uint64)


def _row_codes(codes: CodeBatch, rows: list[list[int]], drop_last: bool = False) -> CodeBatch:
    """Each row's comparison text, gathered from the parts' codes: (parts, each + PART_END).

    ``drop_last`` removes each row's final PART_END, which gives exactly :func:`row_text`'s
    normalised text (what the n-gram windows of decontamination must see)."""
    counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(counts.sum()))
    seg_len, seg_start = codes.lengths[flat], codes.starts[flat]
    seg_end = np.cumsum(seg_len)
    # position in codes.codes of every gathered code point: a run of seg_len from seg_start per part
    gather = np.arange(int(seg_end[-1]) if len(seg_end) else 0) + np.repeat(seg_start - (seg_end - seg_len), seg_len)
    row_of = np.repeat(np.arange(len(rows)), counts)
    lengths = np.bincount(row_of, weights=seg_len, minlength=len(rows)).astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    if drop_last:
        ends = (starts + lengths - 1)[lengths > 0]
        keep = np.ones(len(gather), dtype=bool)
        keep[ends] = False
        gather = gather[keep]
        lengths = np.maximum(lengths - 1, 0)
        starts = np.cumsum(lengths) - lengths
    return CodeBatch(codes=codes.codes[gather], starts=starts, lengths=lengths)


def row_text(kind: str, row: dict, with_answers: bool) -> str:
    """The text a row is compared on: its prompt (and, when asked, every answer in it).
    (The build gathers the same text from a :class:`PartTable`; this is its definition.)"""
    parts = [f"{m['role']}{ROLE_MARK}{m['content']}" for m in row.get("messages") or []]
    if kind == "pretrain":
        parts.append(row["text"])
    elif kind == "preferences":
        parts += [row["chosen"], row["rejected"]]
    elif kind == "ranked":
        parts += row["responses"]
    elif kind == "prompts" and with_answers and row.get("reference"):
        parts.append(row["reference"])
    return PART_END.join(parts)
