"""A run's input read in bounded memory: validation, duplicate detection and the figures a split needs, for tens of
millions of records, without holding a record.

The first pass over a manifest keeps 17 bytes per line: what kind of line it is (1 byte), the duration (8) and a
64-bit hash of the record's key (8: normalised path, offset, duration). Duplicates are found by sorting the hashes
(in place; they are dropped after); the few lines whose hashes are equal are compared exactly in a second pass
(only those keys are held), so a hash collision never reports a false duplicate. Later passes stream the records,
the problems (in line order) and the shard lines. A scanned directory or single audio file (a list of records
already) offers the same interface.
"""
from __future__ import annotations

import array
import os
from collections.abc import Iterator

import orjson

from .manifest import Problem, _lines, _text, classify, dumps, loads, plainly_valid

# What the first pass records per line.
BLANK, VALID, NORMALISED, INVALID, DUPLICATE = 0, 1, 2, 3, 4
CONFIRM_BATCH = 1_000_000  # most colliding keys held at once by the exact comparison (more: more passes)


def key_hash(key: tuple) -> int:
    """64 bits of a record key. Python's own hash: salted per process, which is fine (all hashes of one scan come
    from one process); equal keys (1 == 1.0 included) hash equal, as the exact comparison requires."""
    return hash(key)


class ManifestScan:
    """A validated, de-duplicated manifest: `n_records`, `n_problems`, `durations` (numpy, one per record, in
    order), and streams of its problems and records. Built in two passes (three when hashes collide)."""

    def __init__(self, path: str):
        import numpy as np

        self.path = str(path)
        kinds, hashes, durations = array.array("B"), array.array("q"), array.array("d")
        add_kind, add_hash, add_duration = kinds.append, hashes.append, durations.append
        json_error = orjson.JSONDecodeError
        # Valid lines are recorded, every other line is only marked: its message is made again (by classify) when
        # the problems are listed.
        for raw in _lines(self.path):
            try:
                record = loads(raw)
            except json_error:
                add_kind(INVALID if raw.strip() else BLANK)
                continue
            valid = plainly_valid(record)
            if valid is None:
                add_kind(INVALID)
                continue
            p, o, d, normalised = valid
            add_kind(NORMALISED if normalised else VALID)  # a normalised record is written again, its path fixed
            add_hash(key_hash((p, o, d)))
            add_duration(d)
        self._kinds = kinds
        self.n_invalid = kinds.count(INVALID)
        dup_positions = self._duplicates(np.frombuffer(hashes, dtype=np.int64) if hashes else np.zeros(0, np.int64))
        del hashes
        self.durations = np.frombuffer(durations, dtype=np.float64) if durations else np.zeros(0)
        if dup_positions.size:
            keep = np.ones(self.durations.size, dtype=bool)
            keep[dup_positions] = False
            self.durations = self.durations[keep]
        self.n_records = int(self.durations.size)
        self.n_problems = self.n_invalid + int(dup_positions.size)

    def _duplicates(self, hashes):
        """Positions (among valid lines) of exact duplicates; marks their lines DUPLICATE and records the first
        line of each in self._first (line -> first line)."""
        import numpy as np

        self._first: dict[int, int] = {}
        if hashes.size < 2:
            return np.zeros(0, np.int64)
        hashes.sort()  # in place: the hashes are not needed in line order (the exact pass hashes again)
        colliding = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
        if not colliding.size:
            return np.zeros(0, np.int64)
        dups: list[int] = []
        # Exact comparison of the lines whose hashes collide, a batch of hash values per pass so that the keys
        # held stay bounded (a manifest concatenated to itself collides everywhere).
        for lo in range(0, colliding.size, CONFIRM_BATCH):
            wanted = set(colliding[lo:lo + CONFIRM_BATCH].tolist())
            seen: dict[tuple, int] = {}
            pos = -1
            for lineno, _raw, record, key in classify(self.path):
                if record is None:
                    continue
                pos += 1
                if key_hash(key) not in wanted:
                    continue
                first = seen.setdefault(key, lineno)
                if first != lineno:
                    self._kinds[lineno - 1] = DUPLICATE
                    self._first[lineno] = first
                    dups.append(pos)
        return np.array(sorted(dups), dtype=np.int64)

    def problems(self) -> Iterator[Problem]:
        """Every rejected line, in line order, with the message read_manifest gives."""
        if not self.n_problems:
            return
        kinds = self._kinds
        for lineno, raw, _record, key in classify(self.path):
            kind = kinds[lineno - 1]
            if kind == INVALID:
                yield Problem(self.path, lineno, key, _text(raw))
            elif kind == DUPLICATE:
                yield Problem(self.path, lineno, f"duplicate of line {self._first[lineno]} ({key[0]})", _text(raw))

    def bodies(self) -> Iterator[bytes]:
        """The JSON of every record, in order, as a shard line carries it: the input line itself (without its
        surrounding blanks) unless its path was normalised, then the record written again."""
        kinds = self._kinds
        n = len(kinds)
        for lineno, raw in enumerate(_lines(self.path), 1):
            if lineno > n:
                break  # blank lines at the end
            kind = kinds[lineno - 1]
            if kind == VALID:
                yield raw.strip()
            elif kind == NORMALISED:
                record = loads(raw)
                record["audio_filepath"] = os.path.normpath(record["audio_filepath"])
                yield dumps(record)

    def records(self) -> Iterator[dict]:
        kinds = self._kinds
        for lineno, _raw, record, _key in classify(self.path):
            if record is not None and kinds[lineno - 1] != DUPLICATE:
                yield record


class RecordList:
    """A scanned directory or audio file: the records and problems are in memory already (one per file)."""

    def __init__(self, records: list[dict], problems: list[Problem]):
        import numpy as np

        self._records, self._problems = records, problems
        self.n_records, self.n_problems, self.n_invalid = len(records), len(problems), len(problems)
        self.durations = np.array([r["duration"] for r in records], dtype=np.float64)

    def problems(self) -> Iterator[Problem]:
        return iter(self._problems)

    def bodies(self) -> Iterator[bytes]:
        return (dumps(r) for r in self._records)

    def records(self) -> Iterator[dict]:
        return iter(self._records)


class RecordView:
    """The records of a scan as a read-only sequence for Stage.check_input (len, iteration, indexing), streamed
    from the input rather than held."""

    def __init__(self, scan):
        self.scan = scan

    def __len__(self) -> int:
        return self.scan.n_records

    def __iter__(self) -> Iterator[dict]:
        return self.scan.records()

    def __bool__(self) -> bool:
        return self.scan.n_records > 0

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += self.scan.n_records
        for i, record in enumerate(self.scan.records()):
            if i == index:
                return record
        raise IndexError(index)
