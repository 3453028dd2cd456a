"""``medalign audit verify``: check a transcript's hash chain and say what could not be checked.

Problems (the transcript was changed, or damaged):

* a line whose content does not match its hash (edited), or that is not UTF-8 JSON (a line cut
  inside a multi-byte character is reported, never a crash);
* missing lines: a gap in ``seq`` is reported once, with its position and size, never once per
  later line;
* a ``seq`` seen twice (a copied line) or going backwards (reordered lines);
* a ``prev_hash`` that does not match the hash of the line with the previous ``seq``;
* a head file that records more lines than the file has (lines deleted at the end), a different
  last hash, or (keyed chain) a tag that does not verify.

Not checkable, said as such (``unchecked``): a missing head file (then lines deleted at the end
cannot be detected), keyed rows verified without the key, plain rows verified with a key (a keyed
transcript rewritten as a plain one shows up so), lines written after the head by a run that did
not finish.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path

from judges.transcripts import GENESIS, KEYED, PLAIN, chain_hash, head_path, head_tag, key_id
from medalign.config import canonical_json


@dataclass
class VerifyResult:
    lines: int
    problems: list[str]
    unchecked: list[str] = field(default_factory=list)   # what could not be checked, and why
    chains: dict[str, int] = field(default_factory=dict)  # rows by chain kind (sha256, hmac-sha256)

    @property
    def ok(self) -> bool:
        """No problem found (see ``unchecked`` for what could not be looked at)."""
        return not self.problems

    @property
    def complete(self) -> bool:
        """No problem found and everything could be checked."""
        return not self.problems and not self.unchecked


@dataclass
class _Line:
    lineno: int
    seq: int | None
    hash: str | None
    prev_hash: str | None


def _read_lines(path: Path, problems: list[str]) -> list[tuple[int, dict | None]]:
    """(line number, row or None when unreadable) for every complete line; problems for bad
    ones and for a partial last line (which is not read: a writer's next open removes it)."""
    out = []
    pieces = path.read_bytes().split(b"\n")
    tail = pieces.pop()                   # b"" when the file ends with a newline
    if tail:
        problems.append(f"{path}:{len(pieces) + 1}: last line is partial ({len(tail)} bytes, no "
                        "newline): a writer was killed mid-line")
    for lineno, raw in enumerate(pieces, start=1):
        try:
            row = json.loads(raw.decode("utf-8"))
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except UnicodeDecodeError as e:
            problems.append(f"{path}:{lineno}: not valid UTF-8 (byte {e.start}): cut inside a "
                            "multi-byte character, or binary data")
            row = None
        except ValueError:
            problems.append(f"{path}:{lineno}: not valid JSON")
            row = None
        out.append((lineno, row))
    return out


def _check_hashes(path: Path, rows: list[tuple[int, dict | None]], key: bytes | None,
                  problems: list[str], unchecked: list[str]) -> tuple[list[_Line], dict[str, int]]:
    lines, chains, no_key, wrong_key = [], {}, 0, set()
    mine = key_id(key) if key else None
    for lineno, row in rows:
        if row is None:
            continue
        kind = row.get("chain") or PLAIN
        chains[kind] = chains.get(kind, 0) + 1
        body = canonical_json({k: v for k, v in row.items() if k != "hash"})
        if kind == KEYED and key is None:
            no_key += 1
        elif kind == KEYED and row.get("key_id") != mine:
            wrong_key.add(row.get("key_id"))
        elif kind not in (PLAIN, KEYED):
            problems.append(f"{path}:{lineno}: unknown chain kind {kind!r}")
        elif chain_hash(row.get("prev_hash", ""), body, key if kind == KEYED else None) != row.get("hash"):
            problems.append(f"{path}:{lineno}: content does not match its hash (edited)")
        seq = row.get("seq") if isinstance(row.get("seq"), int) else None
        lines.append(_Line(lineno, seq, row.get("hash"), row.get("prev_hash")))
    if no_key:
        unchecked.append(f"{no_key} rows are keyed ({KEYED}, key id "
                         f"{sorted({r.get('key_id') for _, r in rows if r and r.get('chain') == KEYED})}"
                         "): their content cannot be checked without the key (give --key-env VAR)")
    if key is not None and chains.get(PLAIN):
        unchecked.append(f"{chains[PLAIN]} rows use the plain {PLAIN} chain although a key was "
                         "given: no key protects them, anyone could have rewritten them")
    if wrong_key:
        problems.append(f"{path}: rows are keyed with key id(s) {sorted(wrong_key)}, but the key "
                        f"given has id {mine}: wrong key, or rows forged with another key")
    return lines, chains


def _check_structure(path: Path, lines: list[_Line], problems: list[str]) -> None:
    """Gaps, copies, order and links between lines, each reported once."""
    by_seq: dict[int, _Line] = {}
    for ln in lines:
        if ln.seq is None:
            problems.append(f"{path}:{ln.lineno}: no seq")
        elif ln.seq in by_seq:
            problems.append(f"{path}:{ln.lineno}: seq {ln.seq} again (also line "
                            f"{by_seq[ln.seq].lineno}): a line was copied")
        else:
            by_seq[ln.seq] = ln
    seqs = [ln for ln in lines if ln.seq is not None]
    for before, after in zip(seqs, seqs[1:]):
        if after.seq < before.seq and by_seq.get(after.seq) is after:
            problems.append(f"{path}:{after.lineno}: seq {after.seq} comes after seq {before.seq} "
                            "(lines reordered)")
    present = sorted(by_seq)
    expected_next = 0
    for seq in present:
        if seq > expected_next:
            after = by_seq[seq].lineno
            n = seq - expected_next
            where = "at the start" if expected_next == 0 else f"before line {after}"
            problems.append(f"{path}:{after}: {n} line{'s' if n > 1 else ''} missing {where} "
                            f"(seq {expected_next}{'' if n == 1 else f'..{seq - 1}'}; deleted)")
        expected_next = seq + 1
    for seq, ln in by_seq.items():
        prev = GENESIS if seq == 0 else (by_seq[seq - 1].hash if seq - 1 in by_seq else None)
        if prev is not None and ln.prev_hash != prev:
            problems.append(f"{path}:{ln.lineno}: prev_hash does not match the line before it "
                            f"(seq {seq - 1}): a line was replaced")


def _check_head(path: Path, head: Path, lines: list[_Line], chains: dict[str, int],
                key: bytes | None, problems: list[str], unchecked: list[str]) -> None:
    if not head.is_file():
        unchecked.append(f"no head file ({head.name}): lines deleted from the end of the "
                         "transcript cannot be detected")
        return
    try:
        h = json.loads(head.read_text(encoding="utf-8"))
        n, last = int(h.get("count", 0)), h.get("last_hash")
    except (ValueError, TypeError, AttributeError):
        problems.append(f"{head}: not a readable head file")
        return
    by_seq = {ln.seq: ln for ln in lines if ln.seq is not None}
    top = max(by_seq, default=-1) + 1
    if n > top:
        problems.append(f"{path}: {head.name} records {n} lines but the last seq is {top - 1} "
                        f"({n - top} line{'s' if n - top > 1 else ''} deleted at the end)")
    elif n and (n - 1 not in by_seq or by_seq[n - 1].hash != last):
        problems.append(f"{path}: the line with seq {n - 1} does not have the hash {head.name} "
                        "recorded")
    elif top > n:
        unchecked.append(f"{top - n} lines after the last one {head.name} records (written by a "
                         "run that did not finish): deletions among them cannot be detected")
    if h.get("chain") == KEYED:
        if key is None:
            unchecked.append(f"{head.name} is keyed: its tag cannot be checked without the key")
        elif not hmac.compare_digest(str(h.get("tag")), head_tag(key, n, str(last))):
            problems.append(f"{head}: the head's tag does not verify (edited head, or another key)")
    elif chains.get(KEYED):
        problems.append(f"{head}: the rows are keyed but the head is not: the head was replaced")


def verify_transcript(path: str | Path, head: str | Path | None = None,
                      key: bytes | None = None, keep_rows: list | None = None) -> VerifyResult:
    """Check every line, the chain and the head (default ``<path>.head.json``). When
    ``keep_rows`` is a list, the readable rows are appended to it (one read serves both)."""
    path = Path(path)
    problems: list[str] = []
    unchecked: list[str] = []
    rows = _read_lines(path, problems)
    if keep_rows is not None:
        keep_rows.extend(r for _, r in rows if r is not None)
    lines, chains = _check_hashes(path, rows, key, problems, unchecked)
    _check_structure(path, lines, problems)
    _check_head(path, Path(head) if head else head_path(path), lines, chains, key, problems,
                unchecked)
    return VerifyResult(lines=len(rows), problems=problems, unchecked=unchecked, chains=chains)
