"""Reference speech labels for `amela vad tune`: RTTM, TEN-VAD's .scv, or a manifest with `ref_segments`.

Every reader returns Labelled items: the audio span to score and its reference speech intervals in file seconds
(merged: overlapping speakers in an RTTM are one stretch of speech). A malformed label file is a ConfigError naming
the file and line, and the fix.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import ConfigError, ManifestError
from ..manifest import AUDIO_EXTENSIONS, read_manifest

LABEL_EXTENSIONS = (".rttm", ".scv")


@dataclass
class Labelled:
    record: dict  # the manifest record for the VAD run (audio_filepath, duration, offset when a span)
    speech: list[list[float]] = field(default_factory=list)  # reference speech, file seconds, sorted, disjoint
    source: str = ""  # where the labels came from

    @property
    def key(self) -> tuple[str, float]:
        return self.record["audio_filepath"], float(self.record.get("offset", 0) or 0)


def merge_intervals(intervals) -> list[list[float]]:
    out: list[list[float]] = []
    for start, end in sorted((float(s), float(e)) for s, e in intervals if e > s):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return out


def read_rttm(path: str) -> list[list[float]]:
    """SPEAKER lines (`SPEAKER file channel start duration <NA> <NA> speaker <NA> <NA>`): any speaker is speech."""
    intervals = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            fields = line.split()
            if not fields or fields[0] != "SPEAKER":
                continue
            try:
                start, dur = float(fields[3]), float(fields[4])
            except (IndexError, ValueError):
                raise ConfigError(f"{path}:{lineno}: not an RTTM SPEAKER line (expected `SPEAKER file channel start "
                                  f"duration ...`): {line.strip()!r}") from None
            intervals.append((start, start + dur))
    return merge_intervals(intervals)


def read_scv(path: str) -> list[list[float]]:
    """TEN-VAD's format: one line `name,start,end,label,start,end,label,...`, label 1 = speech."""
    with open(path, encoding="utf-8") as fh:
        fields = fh.read().strip().split(",")[1:]
    if len(fields) % 3:
        raise ConfigError(f"{path}:1: expected `name,start,end,label,...` (groups of three after the name), "
                          f"got {len(fields)} fields after the name")
    try:
        triples = [(float(fields[i]), float(fields[i + 1]), int(float(fields[i + 2])))
                   for i in range(0, len(fields), 3)]
    except ValueError as exc:
        raise ConfigError(f"{path}:1: not a number in `name,start,end,label,...`: {exc}") from None
    return merge_intervals((s, e) for s, e, label in triples if label == 1)


def from_directory(root: str) -> tuple[list[Labelled], list[str]]:
    """(items, audio files without a label file) for a directory of audio files with NAME.rttm or NAME.scv."""
    import soundfile

    items, unlabelled = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.lower().endswith(AUDIO_EXTENSIONS):
                continue
            audio = os.path.abspath(os.path.join(dirpath, name))
            stem = os.path.splitext(audio)[0]
            label = next((stem + ext for ext in LABEL_EXTENSIONS if os.path.exists(stem + ext)), None)
            if label is None:
                unlabelled.append(audio)
                continue
            speech = read_rttm(label) if label.endswith(".rttm") else read_scv(label)
            try:
                duration = soundfile.info(audio).duration
            except Exception as exc:  # unreadable audio: say which file, go on with the others
                raise ConfigError(f"{audio}: cannot read the audio header ({exc}); fix or remove it") from None
            items.append(Labelled({"audio_filepath": audio, "duration": duration}, speech, label))
    return items, unlabelled


def from_manifest(path: str) -> list[Labelled]:
    records, problems = read_manifest(path)
    if problems:
        raise ManifestError(f"{path}: {len(problems)} invalid line(s)", problems)
    items = []
    for lineno, record in enumerate(records, 1):
        ref = record.get("ref_segments")
        if not isinstance(ref, list) or not all(isinstance(s, (list, tuple)) and len(s) == 2 for s in ref):
            raise ConfigError(f"{path}: record {lineno} ({record['audio_filepath']}): needs `ref_segments`, a list of "
                              "[start, end] speech intervals in file seconds")
        run_record = {k: v for k, v in record.items() if k != "ref_segments"}
        items.append(Labelled(run_record, merge_intervals(ref), f"{path}:{lineno}"))
    return items


def read_labelled(path: str) -> tuple[list[Labelled], list[str]]:
    if os.path.isdir(path):
        items, unlabelled = from_directory(path)
        if not items:
            raise ConfigError(f"{path}: no audio file with a label file of the same name (NAME.rttm or NAME.scv)")
        return items, unlabelled
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no such directory or manifest")
    return from_manifest(path), []
